package cms

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// AddSignatureTimestamp returns der, a SignedData as Sign makes it, with
// token added as a signature-time-stamp unsigned attribute (RFC 5126
// §5.11.4; CAdES-T, PAdES B-T). token is the DER ContentInfo of an RFC
// 3161 TimeStampToken whose messageImprint is the hash of the signature
// value (Signed.Signature); the caller checks that, as it does for
// SignOptions.SignatureTimestamp.
//
// No signer is needed: unsigned attributes are outside what the signature
// covers (RFC 5652 §5.3, §5.4), so a timestamp can be added after the
// token that signed has gone, as RFC 5126 §4.4.1 allows for CAdES-T. Every
// element of the SignedData is copied as it is, the signed attributes and
// the signature value included; only the lengths of the enclosing
// structures change. Unsigned attributes already present are kept beside
// the new one (§5.11.4 allows several signature-time-stamps), sorted as a
// DER SET OF. The result is parsed again and compared, so an encoding
// that changed what was signed is never returned.
func AddSignatureTimestamp(der, token []byte) ([]byte, error) {
	before, err := parse(der)
	if err != nil {
		return nil, err
	}
	attr, err := tokenAttribute(token)
	if err != nil {
		return nil, err
	}
	out, err := withUnsignedAttribute(der, attr)
	if err != nil {
		return nil, err
	}
	after, err := parse(out)
	if err != nil {
		return nil, fmt.Errorf("cms: internal error: stamped signature does not parse: %w", err)
	}
	if !bytes.Equal(after.signer.attrs, before.signer.attrs) || !bytes.Equal(after.signer.signature, before.signer.signature) {
		return nil, errors.New("cms: internal error: stamping changed the signed attributes or the signature")
	}
	return out, nil
}

// tokenAttribute wraps token as the signature-time-stamp Attribute. The
// token is copied into the output as it is, so anything but one DER
// element would corrupt the whole SignedData.
func tokenAttribute(token []byte) ([]byte, error) {
	s := cryptobyte.String(token)
	var elem cryptobyte.String
	if !s.ReadASN1Element(&elem, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("cms: signature timestamp token is not one DER SEQUENCE")
	}
	return attribute(oidAttrSignatureTimeStampToken, func(b *cryptobyte.Builder) { b.AddBytes(token) })
}

// withUnsignedAttribute re-encodes der (already checked by parse) with attr
// among the unsigned attributes of its only SignerInfo (RFC 5652 §5.1,
// §5.3). Every other element is copied byte for byte.
func withUnsignedAttribute(der, attr []byte) ([]byte, error) {
	bad := func(what string) error { return malformed("%s, re-encoding for a timestamp", what) }
	in := cryptobyte.String(der)
	var ci, explicit, sd, contentType cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&contentType, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, tagExplicit0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, bad("content info")
	}
	// SignedData: version, digestAlgorithms, encapContentInfo, [0]
	// certificates, [1] crls, signerInfos (§5.1). All but the last are
	// kept as they are.
	var version, digests, encap, certs, crls cryptobyte.String
	var haveCerts, haveCRLs bool
	tagCRLs := cbasn1.Tag(1).ContextSpecific().Constructed()
	if !sd.ReadASN1Element(&version, cbasn1.INTEGER) || !sd.ReadASN1Element(&digests, cbasn1.SET) ||
		!sd.ReadASN1Element(&encap, cbasn1.SEQUENCE) ||
		!readOptionalElement(&sd, &certs, &haveCerts, tagCerts) ||
		!readOptionalElement(&sd, &crls, &haveCRLs, tagCRLs) {
		return nil, bad("signed data")
	}
	var infos, si cryptobyte.String
	if !sd.ReadASN1(&infos, cbasn1.SET) || !sd.Empty() || !infos.ReadASN1(&si, cbasn1.SEQUENCE) || !infos.Empty() {
		return nil, bad("signer infos")
	}
	// SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs,
	// signatureAlgorithm, signature, [1] unsignedAttrs (§5.3).
	var siHead []byte
	for _, tag := range []cbasn1.Tag{cbasn1.INTEGER, cbasn1.SEQUENCE, cbasn1.SEQUENCE, tagSignedAttrs, cbasn1.SEQUENCE, cbasn1.OCTET_STRING} {
		var elem cryptobyte.String
		if !si.ReadASN1Element(&elem, tag) {
			return nil, bad("signer info")
		}
		siHead = append(siHead, elem...)
	}
	var unsigned cryptobyte.String
	var haveUnsigned bool
	if !si.ReadOptionalASN1(&unsigned, &haveUnsigned, tagUnsignedAttrs) || !si.Empty() {
		return nil, bad("unsigned attributes")
	}
	attrs := [][]byte{attr}
	for !unsigned.Empty() {
		var a cryptobyte.String
		if !unsigned.ReadASN1Element(&a, cbasn1.SEQUENCE) {
			return nil, bad("unsigned attribute")
		}
		attrs = append(attrs, a)
	}
	// A SET OF in DER is sorted by encoding (X.690 §11.6), as derSet does.
	slices.SortFunc(attrs, bytes.Compare)

	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(contentType)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(version)
				b.AddBytes(digests)
				b.AddBytes(encap)
				if haveCerts {
					b.AddBytes(certs)
				}
				if haveCRLs {
					b.AddBytes(crls)
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddBytes(siHead)
						b.AddASN1(tagUnsignedAttrs, func(b *cryptobyte.Builder) {
							for _, a := range attrs {
								b.AddBytes(a)
							}
						})
					})
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: encode stamped signed data: %w", err)
	}
	return out, nil
}

// readOptionalElement reads the next element, tag included, if it has tag.
func readOptionalElement(s *cryptobyte.String, out *cryptobyte.String, present *bool, tag cbasn1.Tag) bool {
	if *present = s.PeekASN1Tag(tag); !*present {
		return true
	}
	return s.ReadASN1Element(out, tag)
}
