package cms

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	tagSignedAttrs   = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagUnsignedAttrs = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagCerts         = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagExplicit0     = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagDirName       = cbasn1.Tag(4).ContextSpecific().Constructed()
)

type attrValue struct {
	oid   asn1.ObjectIdentifier
	value func(b *cryptobyte.Builder)
}

// signedAttributes returns the DER SET OF Attribute that is hashed and
// signed (RFC 5652 §5.4): content-type, message-digest, signing-time
// (unless t is zero) and signing-certificate-v2, sorted by their encodings
// as X.690 §11.6 requires for a SET OF.
func signedAttributes(digest []byte, t time.Time, cert *x509.Certificate) ([]byte, error) {
	values := []attrValue{
		{oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) }},
		{oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }},
		{oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, cert) }},
	}
	if !t.IsZero() {
		values = append(values, attrValue{oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, t) }})
	}
	var all [][]byte
	for _, a := range values {
		enc, err := attribute(a.oid, a.value)
		if err != nil {
			return nil, err
		}
		all = append(all, enc)
	}
	return derSet(all)
}

// attribute encodes one Attribute (RFC 5652 §5.3) with a single value.
func attribute(oid asn1.ObjectIdentifier, value func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: encode attribute %v: %w", oid, err)
	}
	return out, nil
}

// derSet encodes the elements as a DER SET OF. Sorting whole encodings with
// bytes.Compare equals X.690's zero-padded comparison because no complete
// TLV is a proper prefix of another.
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

// addTime writes a signing time as RFC 5652 §11.3 requires: UTCTime for
// 1950 through 2049, GeneralizedTime otherwise.
func addTime(b *cryptobyte.Builder, t time.Time) {
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
		return
	}
	b.AddASN1GeneralizedTime(t)
}

// addSigningCertificateV2 writes SigningCertificateV2 (RFC 5035 §5.4) with
// one ESSCertIDv2 for cert. hashAlgorithm is omitted because SHA-256 is its
// DEFAULT and DER forbids encoding a default; issuerSerial is included so
// the attribute names the certificate even without its hash being checked.
func addSigningCertificateV2(b *cryptobyte.Builder, cert *x509.Certificate) {
	sum := sha256.Sum256(cert.Raw)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SigningCertificateV2
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certs
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ESSCertIDv2
				b.AddASN1OctetString(sum[:])
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerSerial
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
						b.AddASN1(tagDirName, func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
						})
					})
					b.AddASN1BigInt(cert.SerialNumber)
				})
			})
		})
	})
}

// encodeSignedData assembles ContentInfo{SignedData} (RFC 5652 §5.1) around
// a finished signature. attrs is the DER SET that was signed; in SignerInfo
// it carries the [0] IMPLICIT tag instead (§5.4). unsigned, when not nil,
// is the one unsigned Attribute.
func encodeSignedData(cert *x509.Certificate, chain []*x509.Certificate, alg algorithm, attrs, sig, unsigned []byte) ([]byte, error) {
	attrContent := cryptobyte.String(attrs)
	if !attrContent.ReadASN1(&attrContent, cbasn1.SET) {
		return nil, fmt.Errorf("cms: internal error: signed attributes are not a SET")
	}
	certs := [][]byte{cert.Raw}
	for _, c := range chain {
		if !slices.ContainsFunc(certs, func(r []byte) bool { return bytes.Equal(r, c.Raw) }) {
			certs = append(certs, c.Raw)
		}
	}
	// certificates is a SET OF too; sorted, the whole output is DER.
	slices.SortFunc(certs, bytes.Compare)

	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				// §5.1: version 1, as eContentType is id-data, the only
				// SignerInfo is version 1 and only X.509 certificates
				// are present.
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					addDigestAlgorithm(b, alg.hash)
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					// Detached: eContent is absent (§5.2).
					b.AddASN1ObjectIdentifier(oidData)
				})
				b.AddASN1(tagCerts, func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
							b.AddASN1BigInt(cert.SerialNumber)
						})
						addDigestAlgorithm(b, alg.hash)
						b.AddASN1(tagSignedAttrs, func(b *cryptobyte.Builder) {
							b.AddBytes(attrContent)
						})
						alg.addSignatureAlgorithm(b)
						b.AddASN1OctetString(sig)
						if unsigned != nil {
							b.AddASN1(tagUnsignedAttrs, func(b *cryptobyte.Builder) {
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
		return nil, fmt.Errorf("cms: encode signed data: %w", err)
	}
	return out, nil
}
