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

	// ErrLocked means the document is certified with DocMDP permission 1:
	// no change, not even another signature, keeps the certification.
	ErrLocked = errors.New("pades: document is certified against any change")

	// ErrTooLarge means the signature did not fit the space reserved for
	// it in /Contents.
	ErrTooLarge = errors.New("pades: signature larger than reserved space")
)
