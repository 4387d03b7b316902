package cms

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxTimestamps bounds the signature-time-stamp tokens read from one
// signature; a signer asks for one, RFC 5126 §5.11.4 allows a few.
const maxTimestamps = 8

// VerifyChain checks that cert, the signer Verify returned for der,
// chains to opts.Roots at opts.CurrentTime, through opts.Intermediates and
// the certificates der embeds, for opts.KeyUsages (any when empty), and
// that its key usage allows signing. It is Verify's chain check on its
// own, for a caller that must first learn from the signature at what time
// to check it: the genTime of a signature timestamp (PAdES B-T), say.
// Failures match ErrUntrusted and wrap the x509 error.
func VerifyChain(der []byte, cert *x509.Certificate, opts VerifyOptions) ([]*x509.Certificate, error) {
	sd, err := parse(der)
	if err != nil {
		return nil, err
	}
	if opts.Roots == nil {
		return nil, untrusted("no trusted roots")
	}
	return verifyChain(cert, sd.certs, opts)
}

func untrusted(why string) error { return &wrapped{ErrUntrusted, why} }

// wrapped is a sentinel with a reason after it.
type wrapped struct {
	err error
	why string
}

func (w *wrapped) Error() string { return w.err.Error() + ": " + w.why }

func (w *wrapped) Unwrap() error { return w.err }

// SignatureTimestamps returns the signature-time-stamp tokens (RFC 5126
// §5.11.4) among the unsigned attributes of der's signer, each the DER
// ContentInfo of an RFC 3161 TimeStampToken, in the order they appear.
// They are not verified: VerifyTimestampToken does that. der must be a
// SignedData Verify accepts.
func SignatureTimestamps(der []byte) ([][]byte, error) {
	if _, err := parse(der); err != nil {
		return nil, err
	}
	unsigned, err := unsignedAttributes(der)
	if err != nil {
		return nil, err
	}
	var tokens [][]byte
	for !unsigned.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !unsigned.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return nil, malformed("unsigned attribute")
		}
		if !oid.Equal(oidAttrSignatureTimeStampToken) {
			continue
		}
		for !values.Empty() {
			var tok cryptobyte.String
			if !values.ReadASN1Element(&tok, cbasn1.SEQUENCE) {
				return nil, malformed("signature-time-stamp value")
			}
			if len(tokens) == maxTimestamps {
				return nil, malformed("more than %d signature timestamps", maxTimestamps)
			}
			tokens = append(tokens, bytes.Clone(tok))
		}
	}
	return tokens, nil
}

// unsignedAttributes returns the contents of the [1] unsignedAttrs of the
// only SignerInfo of der (RFC 5652 §5.1, §5.3), empty when there are none.
// der has passed parse, so only the path to them is read.
func unsignedAttributes(der []byte) (cryptobyte.String, error) {
	in := cryptobyte.String(der)
	var ci, explicit, sd, infos, si cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, tagExplicit0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
		!sd.SkipOptionalASN1(tagCerts) || !sd.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) ||
		!sd.ReadASN1(&infos, cbasn1.SET) || !infos.ReadASN1(&si, cbasn1.SEQUENCE) {
		return nil, malformed("signer info")
	}
	for _, tag := range []cbasn1.Tag{cbasn1.INTEGER, cbasn1.SEQUENCE, cbasn1.SEQUENCE, tagSignedAttrs, cbasn1.SEQUENCE, cbasn1.OCTET_STRING} {
		if !si.SkipASN1(tag) {
			return nil, malformed("signer info")
		}
	}
	var unsigned cryptobyte.String
	if !si.ReadOptionalASN1(&unsigned, nil, tagUnsignedAttrs) {
		return nil, malformed("unsigned attributes")
	}
	return unsigned, nil
}

// SignatureValue returns the signature value of der's signer: what a
// signature timestamp stamps (RFC 5126 §5.11.4).
func SignatureValue(der []byte) ([]byte, error) {
	sd, err := parse(der)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(sd.signer.signature), nil
}
