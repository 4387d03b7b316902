package pades

import "errors"

var (
	// ErrEncrypted means the PDF is encrypted (its trailer has /Encrypt);
	// the terminal does not sign documents it cannot show in full.
	ErrEncrypted = errors.New("pades: encrypted pdf")

	// ErrMalformed means the bytes are not a PDF this package can read:
	// no header, a broken cross-reference section, a missing catalog or
	// page tree, or an object that does not parse.
	ErrMalformed = errors.New("pades: malformed pdf")

	// ErrPage means the requested page does not exist in the document.
	ErrPage = errors.New("pades: no such page")

	// ErrPlacement means the visible block asked for does not lie within
	// the page's visible area (CropBox, else MediaBox), or has no area:
	// signed there, it would be invisible or cut off.
	ErrPlacement = errors.New("pades: visible block outside the page")

	// ErrLocked means the document is certified with DocMDP permission 1:
	// no change, not even another signature, keeps the certification.
	ErrLocked = errors.New("pades: document is certified against any change")

	// ErrTooComplex means reading the document would take more work than
	// its Limits allow: more bytes to inflate, more parsing, or more
	// objects. The error text names the limit and its value.
	ErrTooComplex = errors.New("pades: document over budget")

	// ErrActiveContent means the document holds something that runs or
	// changes on its own in a viewer (JavaScript, launch and form
	// actions, additional actions, XFA, rich media) or, unless
	// Limits.AllowEmbeddedFiles, an embedded file. The error text names
	// what was found and where. What the kiosk showed must be what every
	// viewer of the signed letter shows.
	ErrActiveContent = errors.New("pades: active content")

	// ErrTooLarge means the signature did not fit the space reserved for
	// it in /Contents.
	ErrTooLarge = errors.New("pades: signature larger than reserved space")
)
