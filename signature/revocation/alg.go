package revocation

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	_ "crypto/sha256" // the CertID and signature hashes below
	_ "crypto/sha512"
)

// crypto/x509 keeps its table of signature algorithm OIDs to itself; this
// is the part of it an OCSP responder uses (RFC 5758, RFC 4055, RFC 8410).
var signatureAlgorithms = []struct {
	oid asn1.ObjectIdentifier
	alg x509.SignatureAlgorithm
}{
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, x509.SHA1WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, x509.SHA256WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, x509.SHA384WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, x509.SHA512WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, x509.ECDSAWithSHA1},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, x509.ECDSAWithSHA256},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, x509.ECDSAWithSHA384},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}, x509.ECDSAWithSHA512},
	{asn1.ObjectIdentifier{1, 3, 101, 112}, x509.PureEd25519},
}

var oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}

var hashOIDs = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{oidSHA1, crypto.SHA1},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
}

// signatureAlgorithm maps an AlgorithmIdentifier to x509's constant. For
// RSASSA-PSS only what x509 verifies is taken: salt length = hash length,
// MGF1 with the same hash (RFC 4055 §3.1), named by its hashAlgorithm.
func signatureAlgorithm(ai pkix.AlgorithmIdentifier) (x509.SignatureAlgorithm, error) {
	for _, a := range signatureAlgorithms {
		if ai.Algorithm.Equal(a.oid) {
			return a.alg, nil
		}
	}
	if ai.Algorithm.Equal(oidRSAPSS) {
		var params struct {
			Hash pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
		}
		if _, err := asn1.Unmarshal(ai.Parameters.FullBytes, &params); err == nil {
			switch hashByOID(params.Hash.Algorithm) {
			case crypto.SHA256:
				return x509.SHA256WithRSAPSS, nil
			case crypto.SHA384:
				return x509.SHA384WithRSAPSS, nil
			case crypto.SHA512:
				return x509.SHA512WithRSAPSS, nil
			}
		}
	}
	return x509.UnknownSignatureAlgorithm, fmt.Errorf("unsupported signature algorithm %v", ai.Algorithm)
}

// hashByOID is the hash an OID names, 0 for one not known.
func hashByOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for _, h := range hashOIDs {
		if oid.Equal(h.oid) {
			return h.hash
		}
	}
	return 0
}

func digest(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

// spkiBits is the subjectPublicKey BIT STRING's value (nil if unparsable).
func spkiBits(c *x509.Certificate) []byte {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	return spki.PublicKey.RightAlign()
}
