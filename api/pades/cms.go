package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"github.com/tekenid/teken/api/cms"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers: RFC 5652 §11, RFC 5035 §5.4, RFC 3161 appendix A
// (id-aa-signatureTimeStampToken), RFC 5754, RFC 4055, RFC 5758 §3.2.
var (
	oidData               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningCertV2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidSignatureTimeStamp = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
)

// algorithm is a resolved signature scheme.
type algorithm struct {
	hash   crypto.Hash
	ec     bool
	digest asn1.ObjectIdentifier
	sig    asn1.ObjectIdentifier
}

var algorithms = []algorithm{
	{crypto.SHA256, true, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
	{crypto.SHA384, true, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}},
	{crypto.SHA512, true, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}},
	{crypto.SHA256, false, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}},
	{crypto.SHA384, false, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}},
	{crypto.SHA512, false, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}},
}

// resolveAlgorithm checks that signer holds cert's key and picks the
// scheme; the default digest is api/cms's, so both formats agree.
func resolveAlgorithm(signer crypto.Signer, cert *x509.Certificate, h crypto.Hash) (algorithm, error) {
	if signer == nil || cert == nil {
		return algorithm{}, errors.New("pades: nil signer or certificate")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		// A PIV token has several slots; a signature by the wrong one
		// would only be noticed by the central system.
		return algorithm{}, errors.New("pades: signer key does not match the certificate")
	}
	if h == 0 {
		var err error
		if h, err = cms.DefaultHash(cert.PublicKey); err != nil {
			return algorithm{}, fmt.Errorf("pades: %w", err)
		}
	}
	_, ec := cert.PublicKey.(*ecdsa.PublicKey)
	if _, isRSA := cert.PublicKey.(*rsa.PublicKey); !ec && !isRSA {
		return algorithm{}, fmt.Errorf("pades: unsupported key type %T", cert.PublicKey)
	}
	for _, a := range algorithms {
		if a.hash == h && a.ec == ec {
			return a, nil
		}
	}
	return algorithm{}, fmt.Errorf("pades: unsupported digest algorithm %v", h)
}

// signedAttributes is the DER SET of the PAdES baseline signed attributes
// (EN 319 142-1 §6.3): content-type, message-digest and
// signing-certificate-v2, without signing-time (§5.2.2 forbids it; the
// time is /M in the signature dictionary). The SET is sorted as X.690
// §11.6 requires.
func signedAttributes(digest []byte, cert *x509.Certificate) ([]byte, error) {
	sum := sha256.Sum256(cert.Raw)
	values := []struct {
		oid asn1.ObjectIdentifier
		add func(b *cryptobyte.Builder)
	}{
		{oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) }},
		{oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }},
		// RFC 5035 §5.4: ESSCertIDv2 with the DEFAULT SHA-256 omitted and
		// issuerSerial present.
		{oidSigningCertV2, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(sum[:])
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
									b.AddBytes(cert.RawIssuer)
								})
							})
							b.AddASN1BigInt(cert.SerialNumber)
						})
					})
				})
			})
		}},
	}
	var elems [][]byte
	for _, v := range values {
		a, err := attribute(v.oid, v.add)
		if err != nil {
			return nil, err
		}
		elems = append(elems, a)
	}
	return derSet(elems)
}

func attribute(oid asn1.ObjectIdentifier, value func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("pades: encode attribute %v: %w", oid, err)
	}
	return out, nil
}

// derSet sorts whole encodings, which equals X.690's ordering because no
// complete TLV is a proper prefix of another.
func derSet(elems [][]byte) ([]byte, error) {
	slices.SortFunc(elems, bytes.Compare)
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, e := range elems {
			b.AddBytes(e)
		}
	})
	return b.Bytes()
}

// signAttributes calls the signer once over the digest of attrs and checks
// the answer against the certificate, so a token that returns garbage
// never yields a PDF the central system would reject.
func signAttributes(ctx context.Context, signer crypto.Signer, cert *x509.Certificate, alg algorithm, attrs []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pades: sign: %w", err)
	}
	h := alg.hash.New()
	h.Write(attrs)
	digest := h.Sum(nil)
	sig, err := signer.Sign(rand.Reader, digest, alg.hash)
	if err != nil {
		return nil, fmt.Errorf("pades: sign: %w", err)
	}
	ok := false
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, alg.hash, digest, sig) == nil
	}
	if !ok {
		return nil, errors.New("pades: signer returned a signature that does not verify")
	}
	return sig, nil
}

// encodeSignedData assembles the detached ContentInfo{SignedData} (RFC
// 5652 §5) for one signer, with the timestamp token, if any, as the
// signature-time-stamp unsigned attribute.
func encodeSignedData(cert *x509.Certificate, chain []*x509.Certificate, alg algorithm, attrs, sig, token []byte) ([]byte, error) {
	attrContent := cryptobyte.String(attrs)
	if !attrContent.ReadASN1(&attrContent, cbasn1.SET) {
		return nil, errors.New("pades: internal error: signed attributes are not a SET")
	}
	certs := [][]byte{cert.Raw}
	for _, c := range chain {
		if c != nil && !slices.ContainsFunc(certs, func(r []byte) bool { return bytes.Equal(r, c.Raw) }) {
			certs = append(certs, c.Raw)
		}
	}
	slices.SortFunc(certs, bytes.Compare)
	var unsigned []byte
	if token != nil {
		var err error
		unsigned, err = attribute(oidSignatureTimeStamp, func(b *cryptobyte.Builder) { b.AddBytes(token) })
		if err != nil {
			return nil, err
		}
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(alg.digest) })
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
							b.AddASN1BigInt(cert.SerialNumber)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(alg.digest) })
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddBytes(attrContent)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(alg.sig)
							if !alg.ec {
								b.AddASN1NULL() // RFC 4055 §5
							}
						})
						b.AddASN1OctetString(sig)
						if unsigned != nil {
							b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
								b.AddBytes(unsigned)
							})
						}
					})
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("pades: encode signed data: %w", err)
	}
	return out, nil
}
