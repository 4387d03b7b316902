package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"
)

// SignOptions tune Sign and SignDigest. The zero value signs with
// DefaultHash, PKCS#1 v1.5 for RSA, the current time and no extra chain.
type SignOptions struct {
	// Hash is the digest algorithm: SHA-256, SHA-384 or SHA-512. Zero
	// means DefaultHash of the signer's key.
	Hash crypto.Hash
	// PSS asks an RSA signer for RSASSA-PSS with MGF1 over Hash and a salt
	// as long as the digest; it is an error for ECDSA.
	PSS bool
	// SigningTime goes into the signing-time attribute; zero means now.
	// It is truncated to whole seconds, the precision of UTCTime.
	SigningTime time.Time
	// Chain holds extra certificates (intermediates) to embed beside the
	// signer certificate.
	Chain []*x509.Certificate
	// OmitSigningTime leaves out the signing-time attribute and ignores
	// SigningTime: PAdES forbids it (ETSI EN 319 142-1 §5.2.2) and carries
	// the time in the PDF signature dictionary instead.
	OmitSigningTime bool
	// SignatureTimestamp, when set, is called once with the signature
	// value after it has been checked. The token it returns, the DER
	// ContentInfo of an RFC 3161 TimeStampToken over that value, becomes
	// the signature-time-stamp unsigned attribute (RFC 5126 §5.11.4;
	// CAdES-T, PAdES B-T). A nil token adds nothing; an error fails the
	// signature, so a caller that would rather keep an unstamped
	// signature returns nil, nil and keeps the error itself.
	SignatureTimestamp func(ctx context.Context, signature []byte) (token []byte, err error)
}

// Sign hashes content and returns a detached CMS SignedData (DER) over it,
// signed by signer, whose certificate is cert. signer is called exactly
// once, with the digest of the DER-encoded signed attributes. ctx is
// checked while hashing and before the signer is asked; crypto.Signer
// offers no way to stop a signature already in progress on a token.
func Sign(ctx context.Context, content io.Reader, signer crypto.Signer, cert *x509.Certificate, opts SignOptions) ([]byte, error) {
	alg, err := prepare(signer, cert, opts.Hash, opts.PSS)
	if err != nil {
		return nil, err
	}
	digest, err := Digest(ctx, content, alg.hash)
	if err != nil {
		return nil, err
	}
	return signDigest(ctx, digest, signer, cert, alg, opts)
}

// SignDigest is Sign for a document digest computed beforehand (with
// opts.Hash, or DefaultHash of the key when that is zero), so a document
// hashed once can be signed by many officials.
func SignDigest(ctx context.Context, digest []byte, signer crypto.Signer, cert *x509.Certificate, opts SignOptions) ([]byte, error) {
	alg, err := prepareDigest(signer, cert, opts.Hash, opts.PSS, digest)
	if err != nil {
		return nil, err
	}
	return signDigest(ctx, digest, signer, cert, alg, opts)
}

// Digest hashes content with h, checking ctx between chunks so a large
// document on a slow reader can be abandoned.
func Digest(ctx context.Context, content io.Reader, h crypto.Hash) ([]byte, error) {
	if content == nil {
		return nil, errors.New("cms: nil content")
	}
	if _, ok := hashOID(h); !ok {
		return nil, fmt.Errorf("cms: unsupported digest algorithm %v", h)
	}
	hh := h.New()
	buf := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cms: hash content: %w", err)
		}
		n, err := content.Read(buf)
		hh.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return hh.Sum(nil), nil
		}
		if err != nil {
			return nil, fmt.Errorf("cms: read content: %w", err)
		}
	}
}

// prepare checks the signer against its certificate and resolves the
// algorithm.
func prepare(signer crypto.Signer, cert *x509.Certificate, h crypto.Hash, pss bool) (algorithm, error) {
	if signer == nil {
		return algorithm{}, errors.New("cms: nil signer")
	}
	if cert == nil {
		return algorithm{}, errors.New("cms: nil certificate")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		// A PIV token holds several slots; a signature by the wrong one
		// would only be noticed by the central system.
		return algorithm{}, errors.New("cms: signer key does not match the certificate")
	}
	return resolve(cert.PublicKey, h, pss)
}

// prepareDigest is prepare for a document digest computed by the caller.
func prepareDigest(signer crypto.Signer, cert *x509.Certificate, h crypto.Hash, pss bool, digest []byte) (algorithm, error) {
	alg, err := prepare(signer, cert, h, pss)
	if err != nil {
		return algorithm{}, err
	}
	if len(digest) != alg.hash.Size() {
		return algorithm{}, fmt.Errorf("cms: digest is %d bytes, %v needs %d", len(digest), alg.hash, alg.hash.Size())
	}
	return alg, nil
}

// sign calls the signer once over digest (for Ed25519 the message itself,
// see signedInput) and checks the result against the
// certificate, so a token that answers with garbage never yields a result
// the central system would reject.
func sign(ctx context.Context, digest []byte, signer crypto.Signer, cert *x509.Certificate, alg algorithm) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cms: sign: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, digest, alg.signerOpts())
	if err != nil {
		return nil, fmt.Errorf("cms: sign: %w", err)
	}
	if err := alg.verify(cert.PublicKey, digest, sig); err != nil {
		return nil, fmt.Errorf("cms: signer returned a signature that does not verify: %w", err)
	}
	return sig, nil
}

func signDigest(ctx context.Context, digest []byte, signer crypto.Signer, cert *x509.Certificate, alg algorithm, opts SignOptions) ([]byte, error) {
	for _, c := range opts.Chain {
		if c == nil {
			return nil, errors.New("cms: nil certificate in chain")
		}
	}
	var t time.Time // zero leaves the attribute out
	if !opts.OmitSigningTime {
		if t = opts.SigningTime; t.IsZero() {
			t = time.Now()
		}
		t = t.UTC().Truncate(time.Second)
	}
	attrs, err := signedAttributes(digest, t, cert)
	if err != nil {
		return nil, err
	}
	if err := alg.checkCMS(); err != nil {
		return nil, err
	}
	sig, err := sign(ctx, alg.signedInput(attrs), signer, cert, alg)
	if err != nil {
		return nil, err
	}
	var unsigned []byte
	if opts.SignatureTimestamp != nil {
		if unsigned, err = timestampAttribute(ctx, opts.SignatureTimestamp, sig); err != nil {
			return nil, err
		}
	}
	return encodeSignedData(cert, opts.Chain, alg, attrs, sig, unsigned)
}

// timestampAttribute asks for a token over sig and wraps it as the
// signature-time-stamp Attribute; nil when no token is given.
func timestampAttribute(ctx context.Context, stamp func(context.Context, []byte) ([]byte, error), sig []byte) ([]byte, error) {
	token, err := stamp(ctx, bytes.Clone(sig))
	if err != nil {
		return nil, fmt.Errorf("cms: signature timestamp: %w", err)
	}
	if token == nil {
		return nil, nil
	}
	return tokenAttribute(token)
}
