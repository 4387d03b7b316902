package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Config configures a Checker; every field may be left zero.
type Config struct {
	Client    *http.Client     // nil = a plain client
	Responder string           // an OCSP responder URL used for every certificate instead of the AIA's; "" = AIA
	Timeout   time.Duration    // per request; 0 = 10s
	Now       func() time.Time // nil = time.Now
	MaxAge    time.Duration    // freshness for an OCSP response or CRL without nextUpdate; 0 = 24h
}

// maxSkew is how far in the future a thisUpdate may be: the responder's
// clock and ours differ a little.
const maxSkew = 5 * time.Minute

// Checker gets revocation evidence over HTTP. It is safe for concurrent
// use, and caches what it got (per issuer key and serial, CRLs per issuer
// and URL) until the evidence's nextUpdate, or MaxAge when it has none.
type Checker struct {
	cfg Config

	mu    sync.Mutex
	certs map[string]*status   // issuer key + serial → last evidence
	crls  map[string]*crlEntry // issuer key + URL → CRL
}

// status is the evidence for one certificate, as cached.
type status struct {
	source     string
	der        []byte            // the OCSPResponse or CertificateList
	delegate   *x509.Certificate // OCSP responder certificate, if delegated
	thisUpdate time.Time
	nextUpdate time.Time
	expiry     time.Time
}

// New returns a Checker for cfg.
func New(cfg Config) *Checker {
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	return &Checker{cfg: cfg, certs: map[string]*status{}, crls: map[string]*crlEntry{}}
}

// Evidence is the revocation data that shows the certificates of a chain
// unrevoked.
type Evidence struct {
	OCSPs    [][]byte            // DER OCSPResponse (full response, as DSS /OCSPs and CAdES revocationValues want)
	CRLs     [][]byte            // DER CertificateList
	Certs    []*x509.Certificate // extra certificates needed to check them (delegated OCSP responder certs)
	Statuses []CertStatus        // one per checked certificate, in chain order
}

// CertStatus says where the evidence for one certificate came from.
type CertStatus struct {
	Cert       *x509.Certificate
	Source     string // "ocsp", "crl" or "none"
	ThisUpdate time.Time
	NextUpdate time.Time // zero when absent
}

// RevokedError: a certificate is revoked (permanent).
type RevokedError struct {
	Cert      *x509.Certificate
	RevokedAt time.Time
	Reason    int // RFC 5280 §5.3.1 CRLReason
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("revocation: certificate %s (serial %x) revoked at %s, reason %d",
		e.Cert.Subject, e.Cert.SerialNumber, e.RevokedAt.UTC().Format(time.RFC3339), e.Reason)
}

var (
	// ErrUnknown: the responder says unknown and no CRL decides (permanent).
	ErrUnknown = errors.New("revocation: status unknown")
	// ErrUnavailable: nothing reachable, valid or fresh enough (transient).
	ErrUnavailable = errors.New("revocation: no evidence")
)

// Check gets and checks revocation evidence for every certificate of chain but the last
// (chain[i] against its issuer chain[i+1]; chain is leaf first, ending at the trust anchor).
// OCSP first (RFC 6960: responder signature, responder authority = the CA itself or a delegated
// responder certificate issued by the CA with id-kp-OCSPSigning, nonce when the responder echoes it,
// thisUpdate not in the future, not past nextUpdate / MaxAge), then CRL from the distribution points
// (signature by the issuer, freshness). A certificate with neither AIA OCSP nor CDP (and no
// Responder) has Source "none" and is not an error. Evidence whose thisUpdate is before
// `after` is not used (cached or not): a fresh one is fetched (ETSI EN 319 102-1: revocation data
// issued after the best-signature-time); pass the zero time when any fresh-enough evidence will do.
func (c *Checker) Check(ctx context.Context, chain []*x509.Certificate, after time.Time) (*Evidence, error) {
	ev := &Evidence{}
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		if cert == nil || issuer == nil {
			return nil, fmt.Errorf("revocation: chain[%d] or its issuer is nil", i)
		}
		st, err := c.checkOne(ctx, cert, issuer, after)
		if err != nil {
			return nil, err
		}
		ev.add(cert, st)
	}
	return ev, nil
}

func (ev *Evidence) add(cert *x509.Certificate, st *status) {
	ev.Statuses = append(ev.Statuses, CertStatus{Cert: cert, Source: st.source, ThisUpdate: st.thisUpdate, NextUpdate: st.nextUpdate})
	switch st.source {
	case "ocsp":
		ev.OCSPs = appendUnique(ev.OCSPs, st.der)
	case "crl":
		ev.CRLs = appendUnique(ev.CRLs, st.der)
	}
	if st.delegate != nil {
		for _, c := range ev.Certs {
			if c.Equal(st.delegate) {
				return
			}
		}
		ev.Certs = append(ev.Certs, st.delegate)
	}
}

func appendUnique(l [][]byte, b []byte) [][]byte {
	for _, x := range l {
		if bytes.Equal(x, b) {
			return l
		}
	}
	return append(l, b)
}

// checkOne decides one certificate: cache, then each OCSP responder, then
// each CRL, collecting why each source failed.
func (c *Checker) checkOne(ctx context.Context, cert, issuer *x509.Certificate, after time.Time) (*status, error) {
	now := c.cfg.Now()
	key := string(issuer.RawSubjectPublicKeyInfo) + "\x00" + string(cert.SerialNumber.Bytes())
	c.mu.Lock()
	cached, ok := c.certs[key]
	c.mu.Unlock()
	if ok && usable(cached.thisUpdate, cached.expiry, now, after) {
		return cached, nil
	}

	responders := cert.OCSPServer
	if c.cfg.Responder != "" {
		responders = []string{c.cfg.Responder}
	}
	if len(responders) == 0 && len(cert.CRLDistributionPoints) == 0 {
		return &status{source: "none"}, nil
	}
	var reasons []string
	fail := func(source, url string, err error) {
		reasons = append(reasons, fmt.Sprintf("%s %s: %v", source, url, err))
	}
	unknown := false
	for _, u := range responders {
		if why := c.responderURL(u); why != "" {
			fail("ocsp", u, errors.New(why))
			continue
		}
		st, reply, err := c.ocsp(ctx, u, cert, issuer, now, after)
		if err != nil {
			fail("ocsp", u, err)
			continue
		}
		switch reply.status {
		case ocsp.Good:
			c.store(key, st)
			return st, nil
		case ocsp.Revoked:
			return nil, &RevokedError{Cert: cert, RevokedAt: reply.revokedAt, Reason: reply.reason}
		default:
			unknown = true
			fail("ocsp", u, errors.New("status unknown"))
		}
	}
	for _, u := range cert.CRLDistributionPoints {
		if why := httpURL(u); why != "" {
			fail("crl", u, errors.New(why))
			continue
		}
		e, err := c.crl(ctx, u, issuer, now, after)
		if err == nil {
			err = e.covers(cert, u)
		}
		if err != nil {
			fail("crl", u, err)
			continue
		}
		if r := e.lookup(cert); r != nil {
			return nil, &RevokedError{Cert: cert, RevokedAt: r.RevocationTime, Reason: r.ReasonCode}
		}
		st := &status{source: "crl", der: e.der, thisUpdate: e.thisUpdate, nextUpdate: e.list.NextUpdate, expiry: e.expiry}
		c.store(key, st)
		return st, nil
	}
	sentinel := ErrUnavailable
	if unknown {
		sentinel = ErrUnknown
	}
	err := fmt.Errorf("%w for %s (serial %x): %s", sentinel, cert.Subject, cert.SerialNumber, strings.Join(reasons, "; "))
	if ctx.Err() != nil {
		// The caller's end, not the sources', made them fail.
		err = fmt.Errorf("%w: %w", err, ctx.Err())
	}
	return nil, err
}

// responderURL is httpURL for a responder, except that a configured
// Responder may also be https: the operator chose it, and the client's
// roots.
func (c *Checker) responderURL(u string) string {
	if u == c.cfg.Responder && strings.HasPrefix(u, "https://") {
		return ""
	}
	return httpURL(u)
}

// ocsp asks the responder at url about cert and checks the answer.
func (c *Checker) ocsp(ctx context.Context, url string, cert, issuer *x509.Certificate, now, after time.Time) (*status, *ocspReply, error) {
	req, nonce, err := newOCSPRequest(cert, issuer)
	if err != nil {
		return nil, nil, err
	}
	der, err := c.fetch(ctx, http.MethodPost, url, "application/ocsp-request", req, maxOCSPBytes)
	if err != nil {
		return nil, nil, err
	}
	reply, err := checkOCSP(der, cert, issuer, nonce)
	if err != nil {
		return nil, nil, err
	}
	expiry := reply.nextUpdate
	if expiry.IsZero() {
		expiry = reply.thisUpdate.Add(c.cfg.MaxAge)
	}
	if err := fresh(reply.thisUpdate, expiry, now, after); err != nil {
		return nil, nil, fmt.Errorf("ocsp response: %w", err)
	}
	st := &status{source: "ocsp", der: der, delegate: reply.delegate,
		thisUpdate: reply.thisUpdate, nextUpdate: reply.nextUpdate, expiry: expiry}
	return st, reply, nil
}

// maxCached is the cache size above which a store first drops what has
// expired, so that a long-lived daemon does not keep every answer it got.
const maxCached = 1024

func (c *Checker) store(key string, st *status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.certs) >= maxCached || len(c.crls) >= maxCached {
		now := c.cfg.Now()
		for k, s := range c.certs {
			if now.After(s.expiry) {
				delete(c.certs, k)
			}
		}
		for k, e := range c.crls {
			if now.After(e.expiry) {
				delete(c.crls, k)
			}
		}
	}
	c.certs[key] = st
}

// fresh says why evidence issued at thisUpdate and good until expiry may
// not be used at now for a signature made after `after`.
func fresh(thisUpdate, expiry, now, after time.Time) error {
	switch {
	case thisUpdate.After(now.Add(maxSkew)):
		return fmt.Errorf("thisUpdate %s is in the future", thisUpdate.UTC().Format(time.RFC3339))
	case now.After(expiry):
		return fmt.Errorf("stale: good until %s", expiry.UTC().Format(time.RFC3339))
	case thisUpdate.Before(after):
		return fmt.Errorf("thisUpdate %s is before %s", thisUpdate.UTC().Format(time.RFC3339), after.UTC().Format(time.RFC3339))
	}
	return nil
}

func usable(thisUpdate, expiry, now, after time.Time) bool {
	return fresh(thisUpdate, expiry, now, after) == nil
}
