package cms

import "errors"

// ErrInvalid matches, through errors.Is, every error that means the
// signature itself is not acceptable (ErrMalformed, ErrUnsupported,
// ErrDigestMismatch, ErrSignerMismatch, ErrBadSignature, ErrUntrusted), as
// opposed to a caller's mistake such as a nil certificate. tekenctl maps it
// to "invalid".
var ErrInvalid = errors.New("cms: invalid signature")

// invalidError is a sentinel that also matches ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

var (
	// ErrMalformed means the bytes are not a SignedData of the profile this
	// package produces: bad DER, missing or duplicated fields, attached
	// content, more than one signer, a missing signer certificate.
	ErrMalformed error = &invalidError{"cms: malformed signature"}

	// ErrUnsupported means a well-formed signature uses an algorithm or
	// key type this package does not accept (for example SHA-1).
	ErrUnsupported error = &invalidError{"cms: unsupported algorithm"}

	// ErrDigestMismatch means the message-digest attribute does not match
	// the given content: the document was changed or the wrong document
	// was given. (A raw signature carries no digest, so VerifyRaw reports
	// ErrBadSignature for the same case.)
	ErrDigestMismatch error = &invalidError{"cms: message digest does not match content"}

	// ErrSignerMismatch means the signing-certificate-v2 attribute does not
	// identify the certificate that verifies the signature.
	ErrSignerMismatch error = &invalidError{"cms: signing certificate attribute does not match signer"}

	// ErrBadSignature means the signature value does not verify with the
	// signer certificate's public key.
	ErrBadSignature error = &invalidError{"cms: signature does not verify"}

	// ErrUntrusted means the signature is intact but the signer certificate
	// does not chain to VerifyOptions.Roots, has expired or is not allowed
	// to sign; the x509 error is wrapped too.
	ErrUntrusted error = &invalidError{"cms: signer certificate not trusted"}
)
