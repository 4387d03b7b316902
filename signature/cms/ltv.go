package cms

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CAdES long-term attributes (RFC 5126 §6.3.3, §6.3.4; ETSI EN 319 122-1
// §5.5.1, §5.5.2) and the OCSP basic response type (RFC 6960 §4.2.1).
var (
	oidAttrCertValues       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 23}
	oidAttrRevocationValues = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 24}
	oidOCSPBasic            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
)

// maxValidationValues bounds what one signature may carry, so that a
// hostile signature cannot make a reader collect without end.
const maxValidationValues = 64

// AddValidationData adds the validation data of a signature as CAdES
// unsigned attributes: certificate-values with certs (DER certificates:
// the chain and any OCSP responder's), and revocation-values with crls
// (DER CertificateList) and ocsps (DER OCSPResponse, as a responder sends
// it; the BasicOCSPResponse inside is what the attribute holds). Like
// AddSignatureTimestamp it needs no signer and leaves every signed byte as
// it was; it goes after the signature timestamp, whose token the data may
// also serve. Empty lists add no attribute; nothing to add returns der.
func AddValidationData(der []byte, certs, crls, ocsps [][]byte) ([]byte, error) {
	before, err := parse(der)
	if err != nil {
		return nil, err
	}
	if len(certs)+len(crls)+len(ocsps) > maxValidationValues {
		return nil, fmt.Errorf("cms: %d validation values, more than %d", len(certs)+len(crls)+len(ocsps), maxValidationValues)
	}
	out := der
	if len(certs) > 0 {
		for _, c := range certs {
			if !oneElement(c) {
				return nil, errors.New("cms: certificate value is not one DER SEQUENCE")
			}
		}
		attr, err := attribute(oidAttrCertValues, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, c := range certs {
					b.AddBytes(c)
				}
			})
		})
		if err != nil {
			return nil, err
		}
		if out, err = withUnsignedAttribute(out, attr); err != nil {
			return nil, err
		}
	}
	if len(crls)+len(ocsps) > 0 {
		basics := make([][]byte, 0, len(ocsps))
		for _, r := range ocsps {
			basic, err := basicOCSP(r)
			if err != nil {
				return nil, err
			}
			basics = append(basics, basic)
		}
		for _, c := range crls {
			if !oneElement(c) {
				return nil, errors.New("cms: CRL is not one DER SEQUENCE")
			}
		}
		attr, err := attribute(oidAttrRevocationValues, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if len(crls) > 0 {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, c := range crls {
								b.AddBytes(c)
							}
						})
					})
				}
				if len(basics) > 0 {
					b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, r := range basics {
								b.AddBytes(r)
							}
						})
					})
				}
			})
		})
		if err != nil {
			return nil, err
		}
		if out, err = withUnsignedAttribute(out, attr); err != nil {
			return nil, err
		}
	}
	after, err := parse(out)
	if err != nil {
		return nil, fmt.Errorf("cms: internal error: signature with validation data does not parse: %w", err)
	}
	if !bytes.Equal(after.signer.attrs, before.signer.attrs) || !bytes.Equal(after.signer.signature, before.signer.signature) {
		return nil, errors.New("cms: internal error: adding validation data changed the signed attributes or the signature")
	}
	return out, nil
}

// ValidationValues returns what the certificate-values and
// revocation-values attributes of der's signer hold: DER certificates,
// DER CRLs and DER BasicOCSPResponses. Nothing is verified here.
func ValidationValues(der []byte) (certs, crls, basicOCSPs [][]byte, err error) {
	if _, err := parse(der); err != nil {
		return nil, nil, nil, err
	}
	unsigned, err := unsignedAttributes(der)
	if err != nil {
		return nil, nil, nil, err
	}
	n := 0
	take := func(list *[][]byte, seq cryptobyte.String, what string) error {
		for !seq.Empty() {
			var e cryptobyte.String
			if !seq.ReadASN1Element(&e, cbasn1.SEQUENCE) {
				return malformed("%s value", what)
			}
			if n++; n > maxValidationValues {
				return malformed("more than %d validation values", maxValidationValues)
			}
			*list = append(*list, bytes.Clone(e))
		}
		return nil
	}
	for !unsigned.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !unsigned.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return nil, nil, nil, malformed("unsigned attribute")
		}
		switch {
		case oid.Equal(oidAttrCertValues):
			for !values.Empty() {
				var seq cryptobyte.String
				if !values.ReadASN1(&seq, cbasn1.SEQUENCE) {
					return nil, nil, nil, malformed("certificate-values")
				}
				if err := take(&certs, seq, "certificate"); err != nil {
					return nil, nil, nil, err
				}
			}
		case oid.Equal(oidAttrRevocationValues):
			for !values.Empty() {
				var rv, crlVals, ocspVals cryptobyte.String
				var haveCRLs, haveOCSPs bool
				if !values.ReadASN1(&rv, cbasn1.SEQUENCE) ||
					!rv.ReadOptionalASN1(&crlVals, &haveCRLs, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
					!rv.ReadOptionalASN1(&ocspVals, &haveOCSPs, cbasn1.Tag(1).ContextSpecific().Constructed()) {
					return nil, nil, nil, malformed("revocation-values")
				}
				// otherRevVals [2] is left unread: nothing here makes it.
				for _, part := range []struct {
					have bool
					in   cryptobyte.String
					list *[][]byte
					what string
				}{{haveCRLs, crlVals, &crls, "CRL"}, {haveOCSPs, ocspVals, &basicOCSPs, "OCSP"}} {
					if !part.have {
						continue
					}
					var seq cryptobyte.String
					if !part.in.ReadASN1(&seq, cbasn1.SEQUENCE) || !part.in.Empty() {
						return nil, nil, nil, malformed("revocation-values %s list", part.what)
					}
					if err := take(part.list, seq, part.what); err != nil {
						return nil, nil, nil, err
					}
				}
			}
		}
	}
	return certs, crls, basicOCSPs, nil
}

// basicOCSP returns the DER BasicOCSPResponse inside a successful
// OCSPResponse (RFC 6960 §4.2.1).
func basicOCSP(resp []byte) ([]byte, error) {
	s := cryptobyte.String(resp)
	var r, rb, bytesSeq cryptobyte.String
	var status int
	var typ asn1.ObjectIdentifier
	var basic cryptobyte.String
	if !s.ReadASN1(&r, cbasn1.SEQUENCE) || !s.Empty() || !r.ReadASN1Enum(&status) {
		return nil, errors.New("cms: OCSP response is not an OCSPResponse")
	}
	if status != 0 {
		return nil, fmt.Errorf("cms: OCSP response status %d, not successful", status)
	}
	if !r.ReadASN1(&rb, cbasn1.Tag(0).ContextSpecific().Constructed()) || !r.Empty() ||
		!rb.ReadASN1(&bytesSeq, cbasn1.SEQUENCE) || !rb.Empty() ||
		!bytesSeq.ReadASN1ObjectIdentifier(&typ) || !bytesSeq.ReadASN1(&basic, cbasn1.OCTET_STRING) || !bytesSeq.Empty() {
		return nil, errors.New("cms: OCSP response bytes malformed")
	}
	if !typ.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("cms: OCSP response type %v, not id-pkix-ocsp-basic", typ)
	}
	if !oneElement(basic) {
		return nil, errors.New("cms: BasicOCSPResponse is not one DER SEQUENCE")
	}
	return bytes.Clone(basic), nil
}

// oneElement reports whether b is exactly one DER SEQUENCE.
func oneElement(b []byte) bool {
	s := cryptobyte.String(b)
	var e cryptobyte.String
	return s.ReadASN1Element(&e, cbasn1.SEQUENCE) && s.Empty()
}
