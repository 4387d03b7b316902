package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxCerts bounds the certificates parsed from one signature; a terminal
// embeds its signer and at most a short chain.
const maxCerts = 16

// signedData is the part of a SignedData that Verify needs. parse accepts
// only the profile Sign produces, in DER: detached id-data content, one
// signer identified by issuerAndSerialNumber, the CAdES-BES signed
// attributes (signing-time optional, as SignOptions.OmitSigningTime leaves
// it out).
type signedData struct {
	digestAlgs []crypto.Hash
	certs      []*x509.Certificate
	signer     signerInfo
}

type signerInfo struct {
	issuer    []byte // DER Name
	serial    *big.Int
	alg       algorithm
	attrs     []byte // DER SET OF Attribute, as hashed for the signature
	signature []byte

	messageDigest []byte
	signingTime   time.Time
	essCert       essCertID
}

// essCertID is the first ESSCertIDv2 of signing-certificate-v2; RFC 5035
// §5.4 binds only that one to the signer.
type essCertID struct {
	hash      crypto.Hash
	certHash  []byte
	hasSerial bool
	issuer    []byte // DER Name from a directoryName; nil if none
	serial    *big.Int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

func parse(der []byte) (*signedData, error) {
	in := cryptobyte.String(der)
	var ci, explicit, sd cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("not a DER ContentInfo")
	}
	if !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, malformed("content type")
	}
	if !ct.Equal(oidSignedData) {
		return nil, malformed("content type %v is not signed-data", ct)
	}
	if !ci.ReadASN1(&explicit, tagExplicit0) || !ci.Empty() ||
		!explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, malformed("signed-data content")
	}
	var version int64
	if !sd.ReadASN1Integer(&version) {
		return nil, malformed("signed-data version")
	}
	if version != 1 {
		return nil, unsupported("signed-data version %d", version)
	}
	out := &signedData{}
	var digests cryptobyte.String
	if !sd.ReadASN1(&digests, cbasn1.SET) {
		return nil, malformed("digest algorithms")
	}
	for !digests.Empty() {
		h, err := readDigestAlgorithm(&digests)
		if err != nil {
			return nil, err
		}
		out.digestAlgs = append(out.digestAlgs, h)
	}
	var eci cryptobyte.String
	var ect asn1.ObjectIdentifier
	if !sd.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&ect) {
		return nil, malformed("encapsulated content info")
	}
	if !ect.Equal(oidData) {
		return nil, unsupported("encapsulated content type %v", ect)
	}
	if !eci.Empty() {
		return nil, malformed("content is attached; a detached signature is expected")
	}
	var certs cryptobyte.String
	var haveCerts bool
	if !sd.ReadOptionalASN1(&certs, &haveCerts, tagCerts) {
		return nil, malformed("certificates")
	}
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, unsupported("certificate that is not X.509")
		}
		if len(out.certs) == maxCerts {
			return nil, malformed("more than %d certificates", maxCerts)
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate: %w", ErrMalformed, err)
		}
		out.certs = append(out.certs, cert)
	}
	// CRLs are skipped: revocation is the business of the chain check.
	if !sd.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return nil, malformed("crls")
	}
	var infos, info cryptobyte.String
	if !sd.ReadASN1(&infos, cbasn1.SET) || !sd.Empty() {
		return nil, malformed("signer infos")
	}
	if !infos.ReadASN1(&info, cbasn1.SEQUENCE) {
		return nil, malformed("no signer info")
	}
	if !infos.Empty() {
		return nil, unsupported("more than one signer")
	}
	if err := parseSignerInfo(info, &out.signer); err != nil {
		return nil, err
	}
	found := false
	for _, h := range out.digestAlgs {
		found = found || h == out.signer.alg.hash
	}
	if !found {
		return nil, malformed("signer digest algorithm %v not listed in digestAlgorithms", out.signer.alg.hash)
	}
	return out, nil
}

func parseSignerInfo(si cryptobyte.String, out *signerInfo) error {
	var version int64
	if !si.ReadASN1Integer(&version) {
		return malformed("signer info version")
	}
	if version != 1 {
		return unsupported("signer info version %d (only issuerAndSerialNumber)", version)
	}
	var sid, issuer cryptobyte.String
	out.serial = new(big.Int)
	if !si.ReadASN1(&sid, cbasn1.SEQUENCE) || !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!sid.ReadASN1Integer(out.serial) || !sid.Empty() {
		return malformed("signer identifier")
	}
	out.issuer = issuer
	hash, err := readDigestAlgorithm(&si)
	if err != nil {
		return err
	}
	var elem, attrs cryptobyte.String
	if !si.ReadASN1Element(&elem, tagSignedAttrs) {
		return malformed("signed attributes missing")
	}
	// RFC 5652 §5.4: the signature covers the EXPLICIT SET OF tag, not the
	// [0] IMPLICIT one carried in SignerInfo.
	out.attrs = bytes.Clone(elem)
	out.attrs[0] = byte(cbasn1.SET)
	if !elem.ReadASN1(&attrs, tagSignedAttrs) {
		return malformed("signed attributes")
	}
	if out.alg, err = readSignatureAlgorithm(&si, hash); err != nil {
		return err
	}
	if !si.ReadASN1Bytes(&out.signature, cbasn1.OCTET_STRING) {
		return malformed("signature value")
	}
	// Unsigned attributes (the signature-time-stamp of
	// SignOptions.SignatureTimestamp, say) are allowed and ignored: they
	// are not covered by the signature.
	if !si.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) || !si.Empty() {
		return malformed("trailing data in signer info")
	}
	if err := parseAttributes(attrs, out); err != nil {
		return err
	}
	if len(out.messageDigest) != hash.Size() {
		return malformed("message digest is %d bytes, %v has %d", len(out.messageDigest), hash, hash.Size())
	}
	return nil
}

// parseAttributes reads the signed attributes. Each that the profile
// knows must appear at most once with one value (RFC 5652 §11), and all
// but signing-time must be present; others are ignored.
func parseAttributes(attrs cryptobyte.String, out *signerInfo) error {
	seen := map[string]bool{}
	for !attrs.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return malformed("signed attribute")
		}
		if seen[oid.String()] {
			return malformed("signed attribute %v repeated", oid)
		}
		seen[oid.String()] = true
		var v cryptobyte.String
		var tag cbasn1.Tag
		one := func() bool { return values.ReadAnyASN1Element(&v, &tag) && values.Empty() }
		switch {
		case oid.Equal(oidAttrContentType):
			var ct asn1.ObjectIdentifier
			if !one() || !v.ReadASN1ObjectIdentifier(&ct) {
				return malformed("content-type attribute")
			}
			if !ct.Equal(oidData) {
				return unsupported("content-type attribute %v", ct)
			}
		case oid.Equal(oidAttrMessageDigest):
			if !one() || !v.ReadASN1Bytes(&out.messageDigest, cbasn1.OCTET_STRING) {
				return malformed("message-digest attribute")
			}
		case oid.Equal(oidAttrSigningTime):
			ok := one()
			switch {
			case ok && tag == cbasn1.UTCTime:
				ok = v.ReadASN1UTCTime(&out.signingTime)
			case ok && tag == cbasn1.GeneralizedTime:
				ok = v.ReadASN1GeneralizedTime(&out.signingTime)
			default:
				ok = false
			}
			if !ok {
				return malformed("signing-time attribute")
			}
		case oid.Equal(oidAttrSigningCertificateV2):
			if !one() {
				return malformed("signing-certificate-v2 attribute")
			}
			if err := parseSigningCertificateV2(v, &out.essCert); err != nil {
				return err
			}
		}
	}
	for _, oid := range []asn1.ObjectIdentifier{oidAttrContentType, oidAttrMessageDigest, oidAttrSigningCertificateV2} {
		if !seen[oid.String()] {
			return malformed("signed attribute %v missing", oid)
		}
	}
	return nil
}

// parseSigningCertificateV2 reads the first ESSCertIDv2 (RFC 5035 §5.4).
func parseSigningCertificateV2(v cryptobyte.String, out *essCertID) error {
	var scv2, certs, first cryptobyte.String
	if !v.ReadASN1(&scv2, cbasn1.SEQUENCE) || !scv2.ReadASN1(&certs, cbasn1.SEQUENCE) ||
		!scv2.SkipOptionalASN1(cbasn1.SEQUENCE) || !scv2.Empty() ||
		!certs.ReadASN1(&first, cbasn1.SEQUENCE) {
		return malformed("signing-certificate-v2")
	}
	out.hash = crypto.SHA256
	if first.PeekASN1Tag(cbasn1.SEQUENCE) {
		// An explicit SHA-256 breaks DER's rule on DEFAULT values but is
		// what some encoders write; it means the same, so it is accepted.
		h, err := readDigestAlgorithm(&first)
		if err != nil {
			return err
		}
		out.hash = h
	}
	if !first.ReadASN1Bytes(&out.certHash, cbasn1.OCTET_STRING) {
		return malformed("signing-certificate-v2 certHash")
	}
	if first.PeekASN1Tag(cbasn1.SEQUENCE) {
		var is, names cryptobyte.String
		out.hasSerial = true
		out.serial = new(big.Int)
		if !first.ReadASN1(&is, cbasn1.SEQUENCE) || !is.ReadASN1(&names, cbasn1.SEQUENCE) ||
			!is.ReadASN1Integer(out.serial) || !is.Empty() {
			return malformed("signing-certificate-v2 issuerSerial")
		}
		for !names.Empty() {
			var gn cryptobyte.String
			var tag cbasn1.Tag
			if !names.ReadAnyASN1(&gn, &tag) {
				return malformed("signing-certificate-v2 issuer name")
			}
			if tag != tagDirName {
				continue
			}
			var name cryptobyte.String
			if !gn.ReadASN1Element(&name, cbasn1.SEQUENCE) || !gn.Empty() {
				return malformed("signing-certificate-v2 directoryName")
			}
			out.issuer = name
		}
	}
	if !first.Empty() {
		return malformed("trailing data in ESSCertIDv2")
	}
	if len(out.certHash) != out.hash.Size() {
		return malformed("signing-certificate-v2 certHash length")
	}
	return nil
}

// readAlgorithmIdentifier reads an AlgorithmIdentifier; params is empty or
// exactly one element.
func readAlgorithmIdentifier(s *cryptobyte.String) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, malformed("algorithm identifier")
	}
	params := ai
	if !ai.Empty() {
		var p cryptobyte.String
		var tag cbasn1.Tag
		if !ai.ReadAnyASN1Element(&p, &tag) || !ai.Empty() {
			return nil, nil, malformed("algorithm parameters")
		}
	}
	return oid, params, nil
}

// absentOrNULL reports whether algorithm parameters are absent or NULL;
// RFC 5754 §2 and RFC 4055 §2.1 make both legal for SHA-2.
func absentOrNULL(params cryptobyte.String) bool {
	return len(params) == 0 || bytes.Equal(params, []byte{0x05, 0x00})
}

func readDigestAlgorithm(s *cryptobyte.String) (crypto.Hash, error) {
	oid, params, err := readAlgorithmIdentifier(s)
	if err != nil {
		return 0, err
	}
	h, ok := hashFromOID(oid)
	if !ok {
		return 0, unsupported("digest algorithm %v", oid)
	}
	if !absentOrNULL(params) {
		return 0, malformed("digest algorithm parameters")
	}
	return h, nil
}

// readSignatureAlgorithm reads a SignerInfo signatureAlgorithm and checks it
// uses digest, the SignerInfo digestAlgorithm. The bare key algorithms
// (rsaEncryption, id-ecPublicKey) are accepted because OpenSSL and other
// CMS encoders write them (RFC 5754 §3.2, RFC 5753 §7.1.3 allow the latter
// by reference to the digest algorithm).
func readSignatureAlgorithm(s *cryptobyte.String, digest crypto.Hash) (algorithm, error) {
	oid, params, err := readAlgorithmIdentifier(s)
	if err != nil {
		return algorithm{}, err
	}
	switch {
	case oid.Equal(oidECPublicKey):
		if !absentOrNULL(params) {
			return algorithm{}, malformed("signature algorithm parameters")
		}
		return algorithm{kind: keyEC, hash: digest}, nil
	case oid.Equal(oidRSAEncryption):
		if !absentOrNULL(params) {
			return algorithm{}, malformed("signature algorithm parameters")
		}
		return algorithm{kind: keyRSA, hash: digest}, nil
	case oid.Equal(oidRSASSAPSS):
		return readPSSParams(params, digest)
	case oid.Equal(oidEd25519):
		if len(params) != 0 {
			return algorithm{}, malformed("Ed25519 parameters must be absent (RFC 8410 §3)")
		}
		a := algorithm{kind: keyEd25519, hash: digest}
		if err := a.checkCMS(); err != nil {
			return algorithm{}, unsupported("%v", err)
		}
		return a, nil
	}
	for _, e := range hashes {
		kind := keyEC
		switch {
		case oid.Equal(e.ecdsa):
			if len(params) != 0 {
				return algorithm{}, malformed("ECDSA parameters must be absent (RFC 5758 §3.2)")
			}
		case oid.Equal(e.rsa):
			if !absentOrNULL(params) {
				return algorithm{}, malformed("signature algorithm parameters")
			}
			kind = keyRSA
		default:
			continue
		}
		if e.hash != digest {
			return algorithm{}, malformed("signature algorithm hash %v differs from digest algorithm %v", e.hash, digest)
		}
		return algorithm{kind: kind, hash: digest}, nil
	}
	return algorithm{}, unsupported("signature algorithm %v", oid)
}

// readPSSParams reads RSASSA-PSS-params (RFC 4055 §3.1). The SHA-1
// defaults are not accepted; hash and MGF1 hash must equal digest.
func readPSSParams(params cryptobyte.String, digest crypto.Hash) (algorithm, error) {
	var seq, hashAlg, mgf, salt, trailer cryptobyte.String
	var hasHash, hasMGF, hasSalt, hasTrailer bool
	if !params.ReadASN1(&seq, cbasn1.SEQUENCE) || !params.Empty() ||
		!seq.ReadOptionalASN1(&hashAlg, &hasHash, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!seq.ReadOptionalASN1(&mgf, &hasMGF, cbasn1.Tag(1).ContextSpecific().Constructed()) ||
		!seq.ReadOptionalASN1(&salt, &hasSalt, cbasn1.Tag(2).ContextSpecific().Constructed()) ||
		!seq.ReadOptionalASN1(&trailer, &hasTrailer, cbasn1.Tag(3).ContextSpecific().Constructed()) ||
		!seq.Empty() {
		return algorithm{}, malformed("RSASSA-PSS parameters")
	}
	if !hasHash || !hasMGF {
		return algorithm{}, unsupported("RSASSA-PSS with SHA-1")
	}
	h, err := readDigestAlgorithm(&hashAlg)
	if err != nil {
		return algorithm{}, err
	}
	mgfOID, mgfParams, err := readAlgorithmIdentifier(&mgf)
	if err != nil {
		return algorithm{}, err
	}
	if !hashAlg.Empty() || !mgf.Empty() {
		return algorithm{}, malformed("RSASSA-PSS parameters")
	}
	if !mgfOID.Equal(oidMGF1) {
		return algorithm{}, unsupported("mask generation function %v", mgfOID)
	}
	mh, err := readDigestAlgorithm(&mgfParams)
	if err != nil {
		return algorithm{}, err
	}
	if h != digest || mh != digest {
		return algorithm{}, malformed("RSASSA-PSS hash differs from digest algorithm %v", digest)
	}
	a := algorithm{kind: keyRSA, hash: digest, pss: true, salt: 20}
	if hasSalt {
		var n int64
		if !salt.ReadASN1Integer(&n) || !salt.Empty() {
			return algorithm{}, malformed("RSASSA-PSS salt length")
		}
		// Zero would mean "auto" to crypto/rsa; a bound keeps int safe.
		if n < 1 || n > 1024 {
			return algorithm{}, unsupported("RSASSA-PSS salt length %d", n)
		}
		a.salt = int(n)
	}
	if hasTrailer {
		var n int64
		if !trailer.ReadASN1Integer(&n) || !trailer.Empty() || n != 1 {
			return algorithm{}, malformed("RSASSA-PSS trailer field")
		}
	}
	return a, nil
}
