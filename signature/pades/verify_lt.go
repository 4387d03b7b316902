package pades

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tekenid/teken/signature/revocation"
	"golang.org/x/crypto/ocsp"
)

// ltData is the document's DSS as Verify uses it: the certificates,
// CRLs and OCSP responses it holds, each with where its stream stands in
// the file, so that a document timestamp can be told to come after it.
type ltData struct {
	dss   *dss
	certs []ltItem[*x509.Certificate]
	crls  []ltItem[*x509.RevocationList]
	ocsps []ltItem[[]byte]
	// answers caches an OCSP response checked for one certificate and
	// issuer; nil when it is not a good answer for them.
	answers map[ocspKey]*ocsp.Response
}

type ltItem[T any] struct {
	v   T
	off int // -1 when not from the DSS or not stored in the file directly
}

type ocspKey struct {
	i            int
	cert, issuer [sha256.Size]byte
}

// loadDSS reads the catalog's DSS for Verify. A DSS that does not parse
// is no DSS: the signatures are judged without it (and cannot reach
// B-LT), as a viewer that ignores it would; only an exhausted budget is an
// error. Items that do not parse are skipped for the same reason.
func (v *verifier) loadDSS() error {
	v.lt = &ltData{answers: map[ocspKey]*ocsp.Response{}}
	_, cat, err := v.d.catalog()
	if err != nil {
		return v.d.bud.err
	}
	s, err := v.d.readDSS(cat)
	if err != nil || s == nil {
		return v.d.bud.err
	}
	v.lt.dss = s
	pool := x509.NewCertPool()
	if v.opts.Intermediates != nil {
		pool = v.opts.Intermediates.Clone()
	}
	for _, e := range s.certs {
		c, err := x509.ParseCertificate(e.der)
		if err != nil {
			continue
		}
		v.lt.certs = append(v.lt.certs, ltItem[*x509.Certificate]{c, e.off})
		// A B-LT signer's chain may be in the DSS only (EN 319 142-1
		// §5.4.2.2).
		pool.AddCert(c)
	}
	v.opts.Intermediates = pool
	for _, e := range s.crls {
		if l, err := x509.ParseRevocationList(e.der); err == nil {
			v.lt.crls = append(v.lt.crls, ltItem[*x509.RevocationList]{l, e.off})
		}
	}
	for _, e := range s.ocsps {
		v.lt.ocsps = append(v.lt.ocsps, ltItem[[]byte]{e.der, e.off})
	}
	return nil
}

// evidence is one statement on a certificate's status.
type evidence struct {
	revoked   bool
	revokedAt time.Time
	reason    int
	off       int // the DSS stream's offset, -1 when not from the DSS
}

// fresh says whether revocation data issued at thisUpdate, valid until
// nextUpdate, speaks for a signature made at at: issued after it when a
// timestamp proves that time (EN 319 102-1 §5.2.5: revocation data after
// the best-signature-time), else current now, since a claimed time proves
// nothing and the certificate may have been revoked up to now.
func (v *verifier) fresh(thisUpdate, nextUpdate, at time.Time, proven bool) bool {
	if proven {
		return !thisUpdate.Before(at)
	}
	return !thisUpdate.After(v.now) && (nextUpdate.IsZero() || !nextUpdate.Before(v.now))
}

// evidenceFor gathers what the CRLs (the caller's and the DSS's) and the
// DSS's OCSP responses say about cert, issued by issuer, for a signature
// at at. Each must be signed by the issuer (for OCSP, or by a responder
// the issuer delegated to with id-kp-OCSPSigning, RFC 6960 §4.2.2.2) and
// fresh; an OCSP "unknown" says nothing.
func (v *verifier) evidenceFor(cert, issuer *x509.Certificate, at time.Time, proven bool) []evidence {
	var out []evidence
	crls := make([]ltItem[*x509.RevocationList], 0, len(v.opts.CRLs)+len(v.lt.crls))
	for _, c := range v.opts.CRLs {
		crls = append(crls, ltItem[*x509.RevocationList]{c, -1})
	}
	crls = append(crls, v.lt.crls...)
	for _, c := range crls {
		l := c.v
		if l == nil || !bytes.Equal(l.RawIssuer, issuer.RawSubject) || !v.fresh(l.ThisUpdate, l.NextUpdate, at, proven) {
			continue
		}
		if l.CheckSignatureFrom(issuer) != nil {
			continue
		}
		e := evidence{off: c.off}
		for _, r := range l.RevokedCertificateEntries {
			if r.SerialNumber != nil && r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				e.revoked, e.revokedAt, e.reason = true, r.RevocationTime, r.ReasonCode
				break
			}
		}
		out = append(out, e)
	}
	for i, o := range v.lt.ocsps {
		resp := v.ocspAnswer(i, o.v, cert, issuer)
		if resp == nil || !v.fresh(resp.ThisUpdate, resp.NextUpdate, at, proven) {
			continue
		}
		switch resp.Status {
		case ocsp.Good:
			out = append(out, evidence{off: o.off})
		case ocsp.Revoked:
			out = append(out, evidence{revoked: true, revokedAt: resp.RevokedAt, reason: resp.RevocationReason, off: o.off})
		}
	}
	return out
}

// ocspAnswer parses the DSS's i-th OCSP response for cert and checks who
// signed it; nil when it is not a good answer about cert from issuer.
func (v *verifier) ocspAnswer(i int, der []byte, cert, issuer *x509.Certificate) *ocsp.Response {
	k := ocspKey{i, sha256.Sum256(cert.Raw), sha256.Sum256(issuer.Raw)}
	if resp, ok := v.lt.answers[k]; ok {
		return resp
	}
	v.lt.answers[k] = nil
	resp, err := revocation.Answer(der, cert, issuer)
	if err != nil {
		return nil
	}
	v.lt.answers[k] = resp
	return resp
}

// dssCert is the offset of cert's stream in the DSS, -1 when it is not
// there.
func (v *verifier) dssCert(cert *x509.Certificate) int {
	for _, c := range v.lt.certs {
		if c.v.Equal(cert) {
			return c.off
		}
	}
	return -1
}

// appendedOnlyValidationData reports why the bytes after end, a revision
// some signature covers, are more than validation data: a DSS and its
// streams, the catalog changed in /DSS and /Extensions only, new
// cross-reference streams. Those are what PAdES appends after the last
// signature (EN 319 142-1 §5.4, B-LT), and they change nothing a viewer
// shows; nil when that is all there is.
func (v *verifier) appendedOnlyValidationData(end int) error {
	if v.lt.dss == nil {
		return fmt.Errorf("no DSS")
	}
	old, err := parse(v.d.b[:end], v.d.bud)
	if err != nil {
		return fmt.Errorf("the signed revision does not read on its own: %v", err)
	}
	rootRef, cat, err := v.d.catalog()
	if err != nil {
		return err
	}
	oldRoot, oldCat, err := old.catalog()
	if err != nil || oldRoot != rootRef {
		return fmt.Errorf("the catalog object changed")
	}
	// Another writer may rewrite the DSS and its VRI in place; those
	// objects may change, if they were nothing but that before.
	var oldDSS, oldVRI ref
	if r, ok := oldCat["DSS"].(ref); ok {
		if dd, err := old.dictOf(r, "DSS"); err == nil && onlyKeys(dd, "Type", "Certs", "OCSPs", "CRLs", "VRI") && (dd["Type"] == nil || dd["Type"] == name("DSS")) {
			oldDSS = r
			if vr, ok := dd["VRI"].(ref); ok {
				if vri, err := old.dictOf(vr, "VRI"); err == nil && vriKeysOnly(vri) {
					oldVRI = vr
				}
			}
		}
	}
	dssObjs := v.dssObjects()
	for num, e := range v.d.xref {
		oe, had := old.xref[num]
		inUse := had && oe.kind != 0
		switch {
		case had && oe == e:
			continue
		case e.kind == 0:
			if inUse {
				return fmt.Errorf("object %d was deleted", num)
			}
			continue
		case num == rootRef.num:
			if !sameExcept(cat, oldCat, "DSS", "Extensions") {
				return fmt.Errorf("the catalog changed in more than /DSS and /Extensions")
			}
			continue
		case dssObjs[num] && (!inUse || num == oldDSS.num && oldDSS.num != 0 || num == oldVRI.num && oldVRI.num != 0):
			continue
		}
		if o, err := v.d.object(num); err == nil && !inUse {
			if s, ok := o.(*stream); ok && s.dict["Type"] == name("XRef") {
				continue
			}
			// The DSS of an earlier update the newest one replaced (AddDSS
			// writes a new one each time and keeps its streams): a
			// dictionary nothing refers to, which no viewer reads.
			if dd, ok := o.(dict); ok && dd["Type"] == name("DSS") && onlyKeys(dd, "Type", "Certs", "OCSPs", "CRLs", "VRI") {
				continue
			}
		}
		return fmt.Errorf("object %d was added or changed, and is not validation data of the DSS", num)
	}
	return nil
}

// dssObjects are the object numbers the DSS is made of: itself, its VRI,
// the VRI entries and every stream they and the DSS arrays refer to.
func (v *verifier) dssObjects() map[int]bool {
	s := v.lt.dss
	objs := map[int]bool{}
	if s.ref.num != 0 {
		objs[s.ref.num] = true
	}
	for _, list := range [][]dssEntry{s.certs, s.ocsps, s.crls} {
		for _, e := range list {
			objs[e.ref.num] = true
		}
	}
	if r, ok := s.dict["VRI"].(ref); ok {
		objs[r.num] = true
	}
	for _, e := range s.vri {
		if r, ok := e.(ref); ok {
			objs[r.num] = true
		}
		ed, err := v.d.dictOf(e, "VRI entry")
		if err != nil {
			continue
		}
		for _, k := range []name{"Cert", "OCSP", "CRL"} {
			a, _ := ed[k].(array)
			for _, x := range a {
				if r, ok := x.(ref); ok {
					if o, err := v.d.resolve(r); err == nil {
						if _, isStream := o.(*stream); isStream {
							objs[r.num] = true
						}
					}
				}
			}
		}
		if r, ok := ed["TS"].(ref); ok {
			if o, err := v.d.resolve(r); err == nil {
				if _, isStream := o.(*stream); isStream {
					objs[r.num] = true
				}
			}
		}
	}
	return objs
}

// sameExcept compares two dictionaries but for the keys named.
func sameExcept(a, b dict, keys ...name) bool {
	a, b = clone(a), clone(b)
	for _, k := range keys {
		delete(a, k)
		delete(b, k)
	}
	return reflect.DeepEqual(a, b)
}

// longTerm raises the level of every B-LT signature that a document
// timestamp Verify found trusted covers, together with the validation
// data its level rests on, to B-LTA (EN 319 142-1 §6.4).
func longTerm(sigs []SignatureReport) {
	for i := range sigs {
		s := &sigs[i]
		if s.Level != "B-LT" {
			continue
		}
		for _, dt := range sigs {
			if dt.Kind == KindDocumentTimestamp && dt.Status == Valid && dt.rangeOK && dt.ByteRange[1] > s.ltEnd {
				s.Level = "B-LTA"
				break
			}
		}
	}
}

// onlyKeys reports whether d has no keys but those named.
func onlyKeys(d dict, keys ...name) bool {
	for k := range d {
		if !slices.Contains(keys, k) {
			return false
		}
	}
	return true
}

// vriKeysOnly reports whether every key of d is a VRI key: 40 hex digits.
func vriKeysOnly(d dict) bool {
	for k := range d {
		if len(k) != 40 || strings.Trim(string(k), "0123456789ABCDEFabcdef") != "" {
			return false
		}
	}
	return true
}
