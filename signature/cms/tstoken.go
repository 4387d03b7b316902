package cms

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // ESS signing-certificate (v1) names a TSA certificate by its SHA-1 (RFC 2634 §5.4)
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of RFC 3161 §2.4.2 (id-ct-TSTInfo) and RFC 2634 §5.4
// (id-aa-signingCertificate).
var (
	oidTSTInfo                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	oidAttrSigningCertificate = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
)

// ErrTimestampMismatch means a time-stamp token is sound but stamps
// something else than the signature it is attached to.
var ErrTimestampMismatch error = &invalidError{"cms: timestamp does not stamp this signature"}

// Timestamp is an RFC 3161 time-stamp token whose signature verified.
type Timestamp struct {
	// Time is the TSTInfo genTime: when the authority saw the imprint.
	Time time.Time
	// Hash and HashedMessage are the messageImprint.
	Hash          crypto.Hash
	HashedMessage []byte
	// Serial is the authority's serial number of the token.
	Serial *big.Int
	// Policy is the TSA policy the token was issued under.
	Policy asn1.ObjectIdentifier
	// Signer is the authority's certificate.
	Signer *x509.Certificate
	// Chain is the verified path from Signer to a root; nil when
	// VerifyOptions.Roots was nil.
	Chain []*x509.Certificate

	certs []*x509.Certificate // embedded in the token
}

// VerifyChain checks the authority's chain as VerifyTimestampToken does
// with opts.Roots, for a caller that verified the token without roots
// first: that it is sound, and what it stamps, say something of the
// signature whatever the trust in its authority. It sets Chain.
func (t *Timestamp) VerifyChain(opts VerifyOptions) ([]*x509.Certificate, error) {
	if opts.Roots == nil {
		return nil, untrusted("no trusted roots")
	}
	// x509 takes a certificate without the extension as good for any
	// use; RFC 3161 §2.3 requires an authority's to name timeStamping.
	if !slices.Contains(t.Signer.ExtKeyUsage, x509.ExtKeyUsageTimeStamping) {
		return nil, untrusted("the authority's certificate does not name the timeStamping extended key usage (RFC 3161 §2.3)")
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}
	chain, err := verifyChain(t.Signer, t.certs, opts)
	if err != nil {
		return nil, err
	}
	t.Chain = chain
	return chain, nil
}

// Stamps reports whether the token's imprint is the hash of message.
func (t *Timestamp) Stamps(message []byte) bool {
	h := t.Hash.New()
	h.Write(message)
	return subtle.ConstantTimeCompare(h.Sum(nil), t.HashedMessage) == 1
}

// VerifyTimestampToken checks an RFC 3161 TimeStampToken, the DER
// ContentInfo as SignatureTimestamps returns it: a SignedData with one
// signer whose encapsulated content is a TSTInfo (RFC 3161 §2.4.2), the
// content-type, message-digest and ESS signing-certificate (v1 or v2,
// RFC 5816) signed attributes, the signature by the embedded authority
// certificate and, with opts.Roots, the authority's chain at
// opts.CurrentTime for the timeStamping extended key usage (§2.3). What
// the token stamps is the caller's to compare (Timestamp.Stamps). Only
// DER is read, and only SHA-2; failures match ErrInvalid, an untrusted
// authority ErrUntrusted.
func VerifyTimestampToken(token []byte, opts VerifyOptions) (*Timestamp, error) {
	tk, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	cert := tk.signerCert()
	if cert == nil {
		return nil, malformed("timestamp authority certificate not included")
	}
	si := &tk.signer
	if err := si.alg.verify(cert.PublicKey, si.alg.signedInput(si.attrs), si.signature); err != nil {
		return nil, err
	}
	for _, id := range si.essCerts {
		if err := id.match(cert); err != nil {
			return nil, err
		}
	}
	d := si.alg.hash.New()
	d.Write(tk.content)
	if subtle.ConstantTimeCompare(d.Sum(nil), si.messageDigest) != 1 {
		return nil, ErrDigestMismatch
	}
	ts, err := parseTSTInfo(tk.content)
	if err != nil {
		return nil, err
	}
	ts.Signer, ts.certs = cert, tk.certs
	if opts.Roots != nil {
		if _, err := ts.VerifyChain(opts); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// token is the part of a TimeStampToken that VerifyTimestampToken needs.
type token struct {
	certs   []*x509.Certificate
	content []byte // the DER TSTInfo
	signer  tokenSigner
}

type tokenSigner struct {
	issuer []byte   // issuerAndSerialNumber (version 1)
	serial *big.Int //
	skid   []byte   // subjectKeyIdentifier (version 3)

	alg           algorithm
	attrs         []byte // DER SET OF Attribute, as hashed for the signature
	signature     []byte
	messageDigest []byte
	essCerts      []essCertID // from signing-certificate and -v2, each binding the authority's certificate
}

func (tk *token) signerCert() *x509.Certificate {
	si := &tk.signer
	for _, c := range tk.certs {
		if si.skid != nil {
			if bytes.Equal(c.SubjectKeyId, si.skid) {
				return c
			}
			continue
		}
		if bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber.Cmp(si.serial) == 0 {
			return c
		}
	}
	return nil
}

// parseToken reads the SignedData of a token (RFC 5652 §5.1; RFC 3161
// §2.4.2): version 1 or 3, the encapsulated TSTInfo, certificates, one
// signer.
func parseToken(der []byte) (*token, error) {
	in := cryptobyte.String(der)
	var ci, explicit, sd cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() || !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, malformed("timestamp token is not a DER ContentInfo")
	}
	if !ct.Equal(oidSignedData) {
		return nil, malformed("timestamp token content type %v is not signed-data", ct)
	}
	if !ci.ReadASN1(&explicit, tagExplicit0) || !ci.Empty() ||
		!explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, malformed("timestamp token signed-data")
	}
	var version int64
	if !sd.ReadASN1Integer(&version) || (version != 1 && version != 3) {
		return nil, malformed("timestamp token signed-data version")
	}
	var digests cryptobyte.String
	if !sd.ReadASN1(&digests, cbasn1.SET) {
		return nil, malformed("timestamp token digest algorithms")
	}
	var eci, wrap cryptobyte.String
	var ect asn1.ObjectIdentifier
	tk := &token{}
	if !sd.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&ect) || !ect.Equal(oidTSTInfo) ||
		!eci.ReadASN1(&wrap, tagExplicit0) || !eci.Empty() ||
		!wrap.ReadASN1Bytes(&tk.content, cbasn1.OCTET_STRING) || !wrap.Empty() {
		return nil, malformed("timestamp token does not encapsulate a TSTInfo")
	}
	var certs cryptobyte.String
	if !sd.ReadOptionalASN1(&certs, nil, tagCerts) {
		return nil, malformed("timestamp token certificates")
	}
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, unsupported("timestamp token certificate that is not X.509")
		}
		if len(tk.certs) == maxCerts {
			return nil, malformed("more than %d certificates in a timestamp token", maxCerts)
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, malformed("timestamp token certificate: %v", err)
		}
		tk.certs = append(tk.certs, cert)
	}
	var infos, info cryptobyte.String
	if !sd.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) ||
		!sd.ReadASN1(&infos, cbasn1.SET) || !sd.Empty() || !infos.ReadASN1(&info, cbasn1.SEQUENCE) || !infos.Empty() {
		return nil, malformed("timestamp token signer infos: want exactly one")
	}
	if err := parseTokenSigner(info, &tk.signer); err != nil {
		return nil, err
	}
	listed := false
	for !digests.Empty() {
		h, err := readDigestAlgorithm(&digests)
		if err != nil {
			return nil, err
		}
		listed = listed || h == tk.signer.alg.hash
	}
	if !listed {
		return nil, malformed("timestamp signer digest algorithm not listed in digestAlgorithms")
	}
	return tk, nil
}

var tagSKID = cbasn1.Tag(0).ContextSpecific()

func parseTokenSigner(si cryptobyte.String, out *tokenSigner) error {
	var version int64
	if !si.ReadASN1Integer(&version) {
		return malformed("timestamp signer info version")
	}
	switch version {
	case 1:
		var sid, issuer cryptobyte.String
		out.serial = new(big.Int)
		if !si.ReadASN1(&sid, cbasn1.SEQUENCE) || !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!sid.ReadASN1Integer(out.serial) || !sid.Empty() {
			return malformed("timestamp signer identifier")
		}
		out.issuer = issuer
	case 3:
		var skid cryptobyte.String
		if !si.ReadASN1(&skid, tagSKID) || len(skid) == 0 {
			return malformed("timestamp signer subject key identifier")
		}
		out.skid = skid
	default:
		return malformed("timestamp signer info version %d", version)
	}
	hash, err := readDigestAlgorithm(&si)
	if err != nil {
		return err
	}
	var elem, attrs cryptobyte.String
	if !si.ReadASN1Element(&elem, tagSignedAttrs) {
		return malformed("timestamp signed attributes missing")
	}
	// RFC 5652 §5.4: the signature covers the SET OF tag, as in parse.
	out.attrs = bytes.Clone(elem)
	out.attrs[0] = byte(cbasn1.SET)
	if !elem.ReadASN1(&attrs, tagSignedAttrs) {
		return malformed("timestamp signed attributes")
	}
	if out.alg, err = readSignatureAlgorithm(&si, hash); err != nil {
		return err
	}
	if !si.ReadASN1Bytes(&out.signature, cbasn1.OCTET_STRING) ||
		!si.SkipOptionalASN1(tagUnsignedAttrs) || !si.Empty() {
		return malformed("timestamp signature value")
	}
	if err := parseTokenAttributes(attrs, out); err != nil {
		return err
	}
	if len(out.messageDigest) != hash.Size() {
		return malformed("timestamp message digest is %d bytes, %v has %d", len(out.messageDigest), hash, hash.Size())
	}
	return nil
}

// parseTokenAttributes reads the signed attributes of RFC 3161 §2.4.2: the
// content type must be id-ct-TSTInfo, and the authority's certificate is
// named by signing-certificate (RFC 2634), signing-certificate-v2 (RFC
// 5816), or both, each of which must then name it.
func parseTokenAttributes(attrs cryptobyte.String, out *tokenSigner) error {
	seen := map[string]bool{}
	for !attrs.Empty() {
		var a, values, v cryptobyte.String
		var oid asn1.ObjectIdentifier
		var tag cbasn1.Tag
		if !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return malformed("timestamp signed attribute")
		}
		if seen[oid.String()] {
			return malformed("timestamp signed attribute %v repeated", oid)
		}
		seen[oid.String()] = true
		one := values.ReadAnyASN1Element(&v, &tag) && values.Empty()
		switch {
		case oid.Equal(oidAttrContentType):
			var ct asn1.ObjectIdentifier
			if !one || !v.ReadASN1ObjectIdentifier(&ct) || !ct.Equal(oidTSTInfo) {
				return malformed("timestamp content-type attribute")
			}
		case oid.Equal(oidAttrMessageDigest):
			if !one || !v.ReadASN1Bytes(&out.messageDigest, cbasn1.OCTET_STRING) {
				return malformed("timestamp message-digest attribute")
			}
		case oid.Equal(oidAttrSigningCertificateV2), oid.Equal(oidAttrSigningCertificate):
			parseESS := parseSigningCertificateV2
			if oid.Equal(oidAttrSigningCertificate) {
				parseESS = parseSigningCertificateV1
			}
			var id essCertID
			if !one {
				return malformed("timestamp signing-certificate attribute")
			}
			if err := parseESS(v, &id); err != nil {
				return err
			}
			out.essCerts = append(out.essCerts, id)
		}
	}
	if !seen[oidAttrContentType.String()] || !seen[oidAttrMessageDigest.String()] {
		return malformed("timestamp signed attributes lack content-type or message-digest")
	}
	if len(out.essCerts) == 0 {
		return malformed("timestamp signed attributes name no certificate (signing-certificate or signing-certificate-v2)")
	}
	return nil
}

// parseSigningCertificateV1 reads the first ESSCertID of RFC 2634 §5.4.1:
// the SHA-1 of the certificate and, optionally, its issuer and serial.
func parseSigningCertificateV1(v cryptobyte.String, out *essCertID) error {
	var sc, certs, first cryptobyte.String
	if !v.ReadASN1(&sc, cbasn1.SEQUENCE) || !sc.ReadASN1(&certs, cbasn1.SEQUENCE) ||
		!sc.SkipOptionalASN1(cbasn1.SEQUENCE) || !sc.Empty() || !certs.ReadASN1(&first, cbasn1.SEQUENCE) {
		return malformed("signing-certificate")
	}
	out.hash = crypto.SHA1
	if !first.ReadASN1Bytes(&out.certHash, cbasn1.OCTET_STRING) || len(out.certHash) != crypto.SHA1.Size() {
		return malformed("signing-certificate certHash")
	}
	if first.PeekASN1Tag(cbasn1.SEQUENCE) {
		if err := parseIssuerSerial(&first, out); err != nil {
			return err
		}
	}
	if !first.Empty() {
		return malformed("trailing data in ESSCertID")
	}
	return nil
}

// parseIssuerSerial reads an IssuerSerial (RFC 5035 §4): general names,
// of which a directoryName is kept, and the serial number.
func parseIssuerSerial(s *cryptobyte.String, out *essCertID) error {
	var is, names cryptobyte.String
	out.hasSerial = true
	out.serial = new(big.Int)
	if !s.ReadASN1(&is, cbasn1.SEQUENCE) || !is.ReadASN1(&names, cbasn1.SEQUENCE) ||
		!is.ReadASN1Integer(out.serial) || !is.Empty() {
		return malformed("signing-certificate issuerSerial")
	}
	for !names.Empty() {
		var gn cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&gn, &tag) {
			return malformed("signing-certificate issuer name")
		}
		if tag != tagDirName {
			continue
		}
		var name cryptobyte.String
		if !gn.ReadASN1Element(&name, cbasn1.SEQUENCE) || !gn.Empty() {
			return malformed("signing-certificate directoryName")
		}
		out.issuer = name
	}
	return nil
}

// parseTSTInfo reads a TSTInfo (RFC 3161 §2.4.2): version 1, policy,
// messageImprint, serialNumber and genTime; accuracy, ordering, nonce,
// tsa and extensions may follow and are not needed.
func parseTSTInfo(der []byte) (*Timestamp, error) {
	in := cryptobyte.String(der)
	var info, imprint cryptobyte.String
	var version int64
	ts := &Timestamp{Serial: new(big.Int)}
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) || !in.Empty() ||
		!info.ReadASN1Integer(&version) || version != 1 ||
		!info.ReadASN1ObjectIdentifier(&ts.Policy) ||
		!info.ReadASN1(&imprint, cbasn1.SEQUENCE) {
		return nil, malformed("TSTInfo")
	}
	var err error
	if ts.Hash, err = readDigestAlgorithm(&imprint); err != nil {
		return nil, err
	}
	if !imprint.ReadASN1Bytes(&ts.HashedMessage, cbasn1.OCTET_STRING) || !imprint.Empty() ||
		len(ts.HashedMessage) != ts.Hash.Size() {
		return nil, malformed("TSTInfo message imprint")
	}
	if !info.ReadASN1Integer(ts.Serial) {
		return nil, malformed("TSTInfo serial number")
	}
	var gen cryptobyte.String
	if !info.ReadASN1(&gen, cbasn1.GeneralizedTime) {
		return nil, malformed("TSTInfo genTime")
	}
	if ts.Time, err = generalizedTime(string(gen)); err != nil {
		return nil, err
	}
	return ts, nil
}

// generalizedTime reads a DER GeneralizedTime (X.690 §11.7): UTC ("Z"),
// seconds present, an optional fraction without trailing zeros, as RFC
// 3161 §2.4.2 writes genTime. cryptobyte's reader refuses the fraction.
func generalizedTime(s string) (time.Time, error) {
	t, err := time.Parse("20060102150405Z0700", s)
	if err != nil || !strings.HasSuffix(s, "Z") || t.Format("20060102150405.999999999Z") != s {
		return time.Time{}, malformed("TSTInfo genTime %q is not DER", truncate(s))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
