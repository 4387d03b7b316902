package cms

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// RawOptions say how a raw signature was made, since it carries no
// metadata: the zero value means DefaultHash of the key and, for RSA,
// PKCS#1 v1.5.
type RawOptions struct {
	// Hash is the digest algorithm; zero means DefaultHash of the key.
	Hash crypto.Hash
	// PSS selects RSASSA-PSS with MGF1 over Hash and a salt as long as
	// the digest.
	PSS bool
}

// SignRaw returns the bare signature over a document digest: ASN.1 DER
// ECDSA-Sig-Value for EC keys, PKCS#1 v1.5 or RSASSA-PSS for RSA, the
// same as `openssl dgst -sign` over the document. An Ed25519 key signs the
// digest itself as its message (pure Ed25519 over the 64-byte SHA-512 of
// the document): a token cannot take a whole document, and PIV tokens do
// not do Ed25519ph. VerifyRaw checks it.
func SignRaw(ctx context.Context, digest []byte, signer crypto.Signer, cert *x509.Certificate, opts RawOptions) ([]byte, error) {
	alg, err := prepareDigest(signer, cert, opts.Hash, opts.PSS, digest)
	if err != nil {
		return nil, err
	}
	return sign(ctx, digest, signer, cert, alg)
}

// VerifyRaw checks a raw signature made by SignRaw over content with the
// key of cert. It checks no chain: the caller decides whether cert is
// trusted. A changed document yields ErrBadSignature.
func VerifyRaw(sig, content []byte, cert *x509.Certificate, opts RawOptions) error {
	if cert == nil {
		return errors.New("cms: nil certificate")
	}
	alg, err := resolve(cert.PublicKey, opts.Hash, opts.PSS)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	h := alg.hash.New()
	h.Write(content)
	return alg.verify(cert.PublicKey, h.Sum(nil), sig)
}
