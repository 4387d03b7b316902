package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"io"
	"time"
)

// VerifyOptions tune Verify. With Roots nil only the signature is checked,
// not whom it belongs to.
type VerifyOptions struct {
	// Roots are the trusted CAs. Nil skips the chain check.
	Roots *x509.CertPool
	// Intermediates adds to the certificates embedded in the signature.
	Intermediates *x509.CertPool
	// CurrentTime is the time at which the chain must be valid; zero means
	// now. The signing-time attribute is the signer's own claim and is
	// not used for this.
	CurrentTime time.Time
	// KeyUsages are the extended key usages the signer certificate must
	// allow; empty means any.
	KeyUsages []x509.ExtKeyUsage
}

// Signed describes a verified signature.
type Signed struct {
	// Signer is the certificate whose key made the signature.
	Signer *x509.Certificate
	// Chain is the verified path from Signer to a root; nil when
	// VerifyOptions.Roots was nil.
	Chain []*x509.Certificate
	// SigningTime is the signing-time attribute, as claimed by the signer;
	// zero when the signature has none (SignOptions.OmitSigningTime).
	SigningTime time.Time
	// DigestAlgorithm hashed the content and the signed attributes.
	DigestAlgorithm crypto.Hash
	// Signature is the signature value of the SignerInfo: what a
	// signature-time-stamp stamps (RFC 5126 §5.11.4), so a timestamp can
	// be asked for, and added with AddSignatureTimestamp, after the
	// signature was made.
	Signature []byte
}

// Verify checks a detached CMS SignedData in DER, as Sign makes it, against
// content: the structure, the signing-certificate-v2 attribute against the
// embedded signer certificate, the signature over the signed attributes,
// the message-digest attribute against content, and, with opts.Roots, the
// signer's chain. Every failure of the signature matches ErrInvalid.
func Verify(sig, content []byte, opts VerifyOptions) (*Signed, error) {
	return VerifyReader(context.Background(), sig, bytes.NewReader(content), opts)
}

// VerifyReader is Verify for content read from r and hashed as it is read,
// so content in pieces (the two byte ranges of a PDF signature, say) need
// not be copied into one slice. ctx is checked between chunks.
func VerifyReader(ctx context.Context, sig []byte, content io.Reader, opts VerifyOptions) (*Signed, error) {
	sd, err := parse(sig)
	if err != nil {
		return nil, err
	}
	si := &sd.signer
	var cert *x509.Certificate
	for _, c := range sd.certs {
		if bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber.Cmp(si.serial) == 0 {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, malformed("signer certificate not included")
	}
	if err := si.alg.verify(cert.PublicKey, si.alg.signedInput(si.attrs), si.signature); err != nil {
		return nil, err
	}
	if err := si.essCert.match(cert); err != nil {
		return nil, err
	}
	digest, err := Digest(ctx, content, si.alg.hash)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(digest, si.messageDigest) != 1 {
		return nil, ErrDigestMismatch
	}
	out := &Signed{Signer: cert, SigningTime: si.signingTime, DigestAlgorithm: si.alg.hash, Signature: bytes.Clone(si.signature)}
	if opts.Roots != nil {
		if out.Chain, err = verifyChain(cert, sd.certs, opts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (id *essCertID) match(cert *x509.Certificate) error {
	h := id.hash.New()
	h.Write(cert.Raw)
	if !bytes.Equal(h.Sum(nil), id.certHash) {
		return fmt.Errorf("%w: certificate hash differs", ErrSignerMismatch)
	}
	if id.hasSerial && (id.serial.Cmp(cert.SerialNumber) != 0 ||
		id.issuer != nil && !bytes.Equal(id.issuer, cert.RawIssuer)) {
		return fmt.Errorf("%w: issuer and serial differ", ErrSignerMismatch)
	}
	return nil
}

func verifyChain(cert *x509.Certificate, embedded []*x509.Certificate, opts VerifyOptions) ([]*x509.Certificate, error) {
	// X.509 §8.2.2.3 / RFC 5280 §4.2.1.3: a key limited to other uses
	// must not sign documents.
	const signing = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	if cert.KeyUsage != 0 && cert.KeyUsage&signing == 0 {
		return nil, fmt.Errorf("%w: key usage does not allow signing", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	if opts.Intermediates != nil {
		inter = opts.Intermediates.Clone()
	}
	for _, c := range embedded {
		if c != cert {
			inter.AddCert(c)
		}
	}
	usages := opts.KeyUsages
	if len(usages) == 0 {
		// x509 would default to server authentication.
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         opts.Roots,
		Intermediates: inter,
		CurrentTime:   opts.CurrentTime,
		KeyUsages:     usages,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return chains[0], nil
}
