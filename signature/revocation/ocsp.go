package revocation

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// The OCSP structures of RFC 6960 §4.1.1 and §4.2.1, parsed here rather than
// by ocsp.ParseResponseForCert, which does not keep the responseExtensions
// (where the nonce is, §4.4.1), matches a single response by serial alone
// (not by issuer), checks only the first certificate of the response and
// not its extended key usage, and refuses a response that a CA signs itself
// while including its own certificate (it checks that certificate against
// the issuer as if it were a delegated responder's; openssl ocsp includes
// it by default).
type (
	ocspRequest struct {
		TBS tbsRequest
	}
	tbsRequest struct {
		RequestList []request
		Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	request struct {
		Cert certID
	}
	certID struct {
		HashAlgorithm  pkix.AlgorithmIdentifier
		IssuerNameHash []byte
		IssuerKeyHash  []byte
		SerialNumber   *big.Int
	}
	ocspResponse struct {
		Status   asn1.Enumerated
		Response responseBytes `asn1:"explicit,tag:0,optional"`
	}
	responseBytes struct {
		ResponseType asn1.ObjectIdentifier
		Response     []byte
	}
	basicResponse struct {
		TBSResponseData    responseData
		SignatureAlgorithm pkix.AlgorithmIdentifier
		Signature          asn1.BitString
		Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	responseData struct {
		Raw         asn1.RawContent
		Version     int `asn1:"optional,default:0,explicit,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []singleResponse
		Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	singleResponse struct {
		CertID     certID
		CertStatus asn1.RawValue
		ThisUpdate time.Time        `asn1:"generalized"`
		NextUpdate time.Time        `asn1:"generalized,explicit,tag:0,optional"`
		Extensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	revokedInfo struct {
		RevocationTime time.Time       `asn1:"generalized"`
		Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional"`
	}
)

var (
	oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1      = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
)

// ocspReply is what a checked response says about one certificate.
type ocspReply struct {
	status     int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	revokedAt  time.Time
	reason     int
	thisUpdate time.Time
	nextUpdate time.Time
	delegate   *x509.Certificate // the delegated responder, nil when the CA signed
}

// newOCSPRequest makes a DER OCSPRequest for cert with a fresh nonce, and
// returns the nonce extension's value as the responder must echo it.
func newOCSPRequest(cert, issuer *x509.Certificate) (req, nonce []byte, err error) {
	id, err := newCertID(cert, issuer)
	if err != nil {
		return nil, nil, err
	}
	// RFC 8954 §2.1: 32 octets, and a responder may refuse more.
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		return nil, nil, fmt.Errorf("ocsp nonce: %w", err)
	}
	nonce, err = asn1.Marshal(n)
	if err != nil {
		return nil, nil, err
	}
	req, err = asn1.Marshal(ocspRequest{TBS: tbsRequest{
		RequestList: []request{{Cert: id}},
		Extensions:  []pkix.Extension{{Id: oidOCSPNonce, Value: nonce}},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("ocsp request: %w", err)
	}
	return req, nonce, nil
}

// newCertID names cert by SHA-1 hashes of its issuer, which every responder
// must support (RFC 6960 §4.3, RFC 5019 §2.1.1).
func newCertID(cert, issuer *x509.Certificate) (certID, error) {
	keyHash, err := publicKeyHash(issuer)
	if err != nil {
		return certID{}, err
	}
	nameHash := sha1.Sum(issuer.RawSubject)
	return certID{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oidSHA1, Parameters: asn1.NullRawValue},
		IssuerNameHash: nameHash[:],
		IssuerKeyHash:  keyHash,
		SerialNumber:   cert.SerialNumber,
	}, nil
}

// publicKeyHash is the SHA-1 of the subjectPublicKey BIT STRING's value, as
// in CertID and ResponderID byKey (RFC 6960 §4.1.1, §4.2.1).
func publicKeyHash(c *x509.Certificate) ([]byte, error) {
	bits := spkiBits(c)
	if bits == nil {
		return nil, fmt.Errorf("public key of %s: unparsable", c.Subject)
	}
	h := sha1.Sum(bits)
	return h[:], nil
}

// checkOCSP parses der, an OCSPResponse from an untrusted source, and
// checks it answers for cert with issuer's authority (RFC 6960 §3.2,
// §4.2.2.2). A nil nonce skips the nonce check (a cached response); else a
// nonce in the response must equal it. Freshness is the caller's.
func checkOCSP(der []byte, cert, issuer *x509.Certificate, nonce []byte) (*ocspReply, error) {
	var resp ocspResponse
	if rest, err := asn1.Unmarshal(der, &resp); err != nil {
		return nil, fmt.Errorf("parse ocsp response: %w", err)
	} else if len(rest) > 0 {
		return nil, errors.New("parse ocsp response: trailing data")
	}
	if s := ocsp.ResponseStatus(resp.Status); s != ocsp.Success {
		return nil, fmt.Errorf("ocsp response status %d (%s)", int(s), s)
	}
	if !resp.Response.ResponseType.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("ocsp response type %v is not basic", resp.Response.ResponseType)
	}
	var basic basicResponse
	if rest, err := asn1.Unmarshal(resp.Response.Response, &basic); err != nil {
		return nil, fmt.Errorf("parse basic ocsp response: %w", err)
	} else if len(rest) > 0 {
		return nil, errors.New("parse basic ocsp response: trailing data")
	}
	tbs := &basic.TBSResponseData
	if tbs.Version != 0 {
		return nil, fmt.Errorf("ocsp response version %d", tbs.Version+1)
	}
	single, err := findSingle(tbs.Responses, cert, issuer)
	if err != nil {
		return nil, err
	}
	for _, e := range single.Extensions {
		if e.Critical {
			return nil, fmt.Errorf("ocsp response: unknown critical extension %v", e.Id)
		}
	}
	for _, e := range tbs.Extensions {
		switch {
		case e.Id.Equal(oidOCSPNonce):
			if nonce != nil && !bytes.Equal(e.Value, nonce) {
				return nil, errors.New("ocsp response: nonce differs from the request's")
			}
		case e.Critical:
			return nil, fmt.Errorf("ocsp response: unknown critical extension %v", e.Id)
		}
	}
	reply := &ocspReply{thisUpdate: single.ThisUpdate, nextUpdate: single.NextUpdate}
	if reply.delegate, err = checkResponder(&basic, issuer, single.ThisUpdate); err != nil {
		return nil, err
	}
	switch st := single.CertStatus; {
	case st.Class == asn1.ClassContextSpecific && st.Tag == 0:
		reply.status = ocsp.Good
	case st.Class == asn1.ClassContextSpecific && st.Tag == 1:
		var ri revokedInfo
		if rest, err := asn1.UnmarshalWithParams(st.FullBytes, &ri, "tag:1"); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("parse ocsp revokedInfo: %v", err)
		}
		reply.status, reply.revokedAt, reply.reason = ocsp.Revoked, ri.RevocationTime, int(ri.Reason)
	case st.Class == asn1.ClassContextSpecific && st.Tag == 2:
		reply.status = ocsp.Unknown
	default:
		return nil, fmt.Errorf("ocsp response: bad certStatus tag %d", st.Tag)
	}
	return reply, nil
}

// findSingle is the SingleResponse whose CertID names cert under issuer,
// whatever hash the responder chose.
func findSingle(list []singleResponse, cert, issuer *x509.Certificate) (*singleResponse, error) {
	bits := spkiBits(issuer)
	for i := range list {
		id := &list[i].CertID
		if id.SerialNumber == nil || id.SerialNumber.Cmp(cert.SerialNumber) != 0 {
			continue
		}
		h := hashByOID(id.HashAlgorithm.Algorithm)
		if h == 0 || bits == nil {
			continue
		}
		if bytes.Equal(id.IssuerNameHash, digest(h, issuer.RawSubject)) && bytes.Equal(id.IssuerKeyHash, digest(h, bits)) {
			return &list[i], nil
		}
	}
	return nil, fmt.Errorf("ocsp response has no status for serial %x of %s", cert.SerialNumber, issuer.Subject)
}

// checkResponder checks the response's signature and its signer's
// authority: the issuer itself, or a certificate in the response that the
// issuer issued with id-kp-OCSPSigning and that was valid at thisUpdate
// (RFC 6960 §4.2.2.2). It returns that delegated certificate, or nil.
func checkResponder(basic *basicResponse, issuer *x509.Certificate, at time.Time) (*x509.Certificate, error) {
	tbs := &basic.TBSResponseData
	alg, err := signatureAlgorithm(basic.SignatureAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("ocsp response: %w", err)
	}
	sig := basic.Signature.RightAlign()
	named, err := responderMatcher(tbs.ResponderID)
	if err != nil {
		return nil, err
	}
	if named(issuer) {
		if err := issuer.CheckSignature(alg, tbs.Raw, sig); err != nil {
			return nil, fmt.Errorf("ocsp response signature by %s: %w", issuer.Subject, err)
		}
		return nil, nil
	}
	for _, raw := range basic.Certificates {
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("ocsp response certificate: %w", err)
		}
		if !named(c) {
			continue
		}
		if !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			return nil, fmt.Errorf("ocsp responder %s is not issued by %s", c.Subject, issuer.Subject)
		}
		if err := c.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("ocsp responder %s certificate: %w", c.Subject, err)
		}
		if !hasOCSPSigning(c) {
			return nil, fmt.Errorf("ocsp responder %s lacks extended key usage id-kp-OCSPSigning", c.Subject)
		}
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return nil, fmt.Errorf("ocsp responder %s certificate not valid at %s", c.Subject, at.Format(time.RFC3339))
		}
		if err := c.CheckSignature(alg, tbs.Raw, sig); err != nil {
			return nil, fmt.Errorf("ocsp response signature by %s: %w", c.Subject, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("ocsp response signed by a responder that is neither %s nor delegated by it", issuer.Subject)
}

// responderMatcher reports whether a certificate is the one a ResponderID
// names (RFC 6960 §4.2.1: byName [1] Name, byKey [2] KeyHash).
func responderMatcher(rid asn1.RawValue) (func(*x509.Certificate) bool, error) {
	if rid.Class != asn1.ClassContextSpecific {
		return nil, errors.New("ocsp response: bad responderID")
	}
	switch rid.Tag {
	case 1:
		return func(c *x509.Certificate) bool { return bytes.Equal(rid.Bytes, c.RawSubject) }, nil
	case 2:
		var h []byte
		if rest, err := asn1.Unmarshal(rid.Bytes, &h); err != nil || len(rest) > 0 {
			return nil, errors.New("ocsp response: bad responderID byKey")
		}
		return func(c *x509.Certificate) bool {
			k, err := publicKeyHash(c)
			return err == nil && bytes.Equal(k, h)
		}, nil
	}
	return nil, fmt.Errorf("ocsp response: responderID tag %d", rid.Tag)
}

func hasOCSPSigning(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			return true
		}
	}
	return false
}
