package revocation

import (
	"bytes"
	"crypto/x509"
	"errors"
	"slices"

	"golang.org/x/crypto/ocsp"
)

// ErrNotAnswer says an OCSP response is not a valid answer about the
// certificate from its issuer.
var ErrNotAnswer = errors.New("revocation: not an OCSP answer about this certificate from its issuer")

// Answer reads an OCSP response held as validation data (a DSS, CAdES
// revocation-values) about cert and checks who signed it: the issuer
// itself, or a responder the issuer delegated to (its certificate issued
// by the issuer, with id-kp-OCSPSigning, valid when the response was
// produced). Freshness is the caller's to judge, against the time it
// validates at.
func Answer(der []byte, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	// Without the issuer: x/crypto/ocsp checks an embedded responder
	// certificate against the issuer as if it were always delegated, and
	// so refuses a response signed by the CA that includes its own
	// certificate. Who signed is checked here instead.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		return nil, errors.Join(ErrNotAnswer, err)
	}
	switch r := resp.Certificate; {
	case r == nil:
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, errors.Join(ErrNotAnswer, err)
		}
	case bytes.Equal(r.Raw, issuer.Raw):
		// Signed by the issuer itself, checked by the parse.
	default:
		if r.CheckSignatureFrom(issuer) != nil || !slices.Contains(r.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) ||
			resp.ProducedAt.Before(r.NotBefore) || resp.ProducedAt.After(r.NotAfter) {
			return nil, ErrNotAnswer
		}
	}
	return resp, nil
}
