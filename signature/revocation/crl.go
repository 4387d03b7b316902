package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/http"
	"time"
)

var (
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDP         = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
)

// issuingDistributionPoint is RFC 5280 §5.2.5, implicitly tagged.
type issuingDistributionPoint struct {
	DistributionPoint asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyUserCerts     bool           `asn1:"optional,tag:1"`
	OnlyCACerts       bool           `asn1:"optional,tag:2"`
	OnlySomeReasons   asn1.BitString `asn1:"optional,tag:3"`
	IndirectCRL       bool           `asn1:"optional,tag:4"`
	OnlyAttrCerts     bool           `asn1:"optional,tag:5"`
}

// crlEntry is a CRL checked against its issuer, shared by every
// certificate of that issuer.
type crlEntry struct {
	der        []byte
	list       *x509.RevocationList
	thisUpdate time.Time
	expiry     time.Time // nextUpdate, or thisUpdate + MaxAge
	idp        *issuingDistributionPoint
}

// crl returns the CRL at url for issuer, cached or fetched, fresh at now
// and issued no earlier than after.
func (c *Checker) crl(ctx context.Context, url string, issuer *x509.Certificate, now, after time.Time) (*crlEntry, error) {
	key := string(issuer.RawSubjectPublicKeyInfo) + "\x00" + url
	c.mu.Lock()
	e, ok := c.crls[key]
	c.mu.Unlock()
	if ok && usable(e.thisUpdate, e.expiry, now, after) {
		return e, nil
	}
	der, err := c.fetch(ctx, http.MethodGet, url, "", nil, maxCRLBytes)
	if err != nil {
		return nil, err
	}
	e, err = checkCRL(der, issuer, c.cfg.MaxAge)
	if err != nil {
		return nil, err
	}
	if err := fresh(e.thisUpdate, e.expiry, now, after); err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	c.mu.Lock()
	c.crls[key] = e
	c.mu.Unlock()
	return e, nil
}

// checkCRL parses der, a CertificateList from an untrusted source, and
// checks that issuer signed it and that it is a complete CRL (RFC 5280
// §5.2.4: a delta CRL alone says nothing of what it leaves out).
func checkCRL(der []byte, issuer *x509.Certificate, maxAge time.Duration) (*crlEntry, error) {
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse crl: %w", err)
	}
	if !bytes.Equal(list.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("crl issued by %s, not %s", list.Issuer, issuer.Subject)
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("crl signature: %w", err)
	}
	e := &crlEntry{der: der, list: list, thisUpdate: list.ThisUpdate, expiry: list.NextUpdate}
	// x509.ParseRevocationList leaves the extensions' meaning to us.
	for _, x := range list.Extensions {
		switch {
		case x.Id.Equal(oidDeltaCRLIndicator):
			return nil, fmt.Errorf("crl is a delta crl")
		case x.Id.Equal(oidIssuingDP):
			idp := new(issuingDistributionPoint)
			if rest, err := asn1.Unmarshal(x.Value, idp); err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("crl issuingDistributionPoint: unparsable")
			}
			if idp.IndirectCRL || idp.OnlyAttrCerts || idp.OnlySomeReasons.BitLength > 0 {
				// Each of these makes the CRL only a part of the answer
				// (RFC 5280 §5.2.5, §6.3.3 (b)(2)(iii), (d)).
				return nil, fmt.Errorf("crl is partial (indirect, attribute or reason-scoped), not supported")
			}
			e.idp = idp
		case x.Id.Equal(oidAuthorityKeyID), x.Id.Equal(oidCRLNumber), !x.Critical:
		default:
			return nil, fmt.Errorf("crl: unknown critical extension %v", x.Id)
		}
	}
	for _, r := range list.RevokedCertificateEntries {
		for _, x := range r.Extensions {
			if x.Critical {
				// e.g. certificateIssuer, meaningful only in an indirect CRL.
				return nil, fmt.Errorf("crl entry: unknown critical extension %v", x.Id)
			}
		}
	}
	if e.expiry.IsZero() {
		e.expiry = e.thisUpdate.Add(maxAge)
	}
	return e, nil
}

// lookup is cert's entry in the CRL, nil when it is not revoked.
func (e *crlEntry) lookup(cert *x509.Certificate) *x509.RevocationListEntry {
	for i := range e.list.RevokedCertificateEntries {
		r := &e.list.RevokedCertificateEntries[i]
		if r.SerialNumber != nil && r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return r
		}
	}
	return nil
}

// covers says why the CRL fetched from url does not decide cert's status
// (RFC 5280 §6.3.3 (b)), or nil when it does.
func (e *crlEntry) covers(cert *x509.Certificate, url string) error {
	if e.idp == nil {
		return nil
	}
	switch {
	case e.idp.OnlyUserCerts && cert.IsCA:
		return fmt.Errorf("crl covers only end-entity certificates")
	case e.idp.OnlyCACerts && !cert.IsCA:
		return fmt.Errorf("crl covers only CA certificates")
	}
	if len(e.idp.DistributionPoint.Bytes) == 0 {
		return nil
	}
	// distributionPoint [0] DistributionPointName: fullName [0] GeneralNames
	// of which a uniformResourceIdentifier [6] must be the URL the
	// certificate named.
	var full asn1.RawValue
	if _, err := asn1.Unmarshal(e.idp.DistributionPoint.Bytes, &full); err != nil || full.Tag != 0 || full.Class != asn1.ClassContextSpecific {
		return fmt.Errorf("crl distribution point is not a fullName")
	}
	for rest := full.Bytes; len(rest) > 0; {
		var gn asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return fmt.Errorf("crl distribution point: unparsable name")
		}
		if gn.Class == asn1.ClassContextSpecific && gn.Tag == 6 && string(gn.Bytes) == url {
			return nil
		}
	}
	return fmt.Errorf("crl's issuing distribution point does not name %s", url)
}
