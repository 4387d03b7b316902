package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/tekenid/teken/internal/testenv"
)

func check(t *testing.T, c *Checker, chain []*x509.Certificate, after time.Time) (*Evidence, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return c.Check(ctx, chain, after)
}

func TestGoodChainByOCSP(t *testing.T) {
	ch := testenv.NewChain(t)
	ev, err := check(t, New(Config{}), ch.Certs(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Statuses) != 2 || len(ev.OCSPs) != 2 || len(ev.CRLs) != 0 || len(ev.Certs) != 0 {
		t.Fatalf("evidence: %d statuses, %d OCSPs, %d CRLs, %d certs; want 2, 2, 0, 0", len(ev.Statuses), len(ev.OCSPs), len(ev.CRLs), len(ev.Certs))
	}
	for i, st := range ev.Statuses {
		if st.Source != "ocsp" || !st.Cert.Equal(ch.Certs()[i]) {
			t.Errorf("status %d: source %q for %s", i, st.Source, st.Cert.Subject)
		}
		if st.ThisUpdate.IsZero() || !st.NextUpdate.After(st.ThisUpdate) {
			t.Errorf("status %d: thisUpdate %v nextUpdate %v", i, st.ThisUpdate, st.NextUpdate)
		}
	}
	// What the evidence holds must be a full OCSPResponse that stands on
	// its own, as a DSS needs it.
	if _, err := ocsp.ParseResponseForCert(ev.OCSPs[0], ch.Leaf.Cert, nil); err != nil {
		t.Errorf("OCSPs[0] is not an OCSP response for the leaf: %v", err)
	}
}

func TestRevokedByOCSP(t *testing.T) {
	ch := testenv.NewChain(t)
	ch.IntermediateOCSP.Revoke(ch.Leaf.Cert)
	_, err := check(t, New(Config{}), ch.Certs(), time.Time{})
	var re *RevokedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RevokedError", err)
	}
	if !re.Cert.Equal(ch.Leaf.Cert) || time.Since(re.RevokedAt) > time.Minute || time.Since(re.RevokedAt) < 0 {
		t.Fatalf("revoked %s at %v", re.Cert.Subject, re.RevokedAt)
	}
}

func TestUnknownWithoutCDP(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: root.Cert, Key: root.Key, NextUpdate: time.Hour})
	leaf := root.Issue(t, "Not in the index", testenv.IssueOptions{OCSP: []string{resp.URL}})
	_, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnknown) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}

func TestNoSourcesIsNone(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	leaf := root.Issue(t, "No AIA, no CDP", testenv.IssueOptions{})
	ev, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if err != nil || len(ev.Statuses) != 1 || ev.Statuses[0].Source != "none" {
		t.Fatalf("ev %+v, err %v; want source none", ev, err)
	}
}

func TestResponderDownFallsBackToCRL(t *testing.T) {
	ch := testenv.NewChain(t)
	ch.RootOCSP.Close()
	ch.IntermediateOCSP.Close()
	ev, err := check(t, New(Config{}), ch.Certs(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.CRLs) != 2 || len(ev.OCSPs) != 0 {
		t.Fatalf("%d CRLs, %d OCSPs; want 2, 0", len(ev.CRLs), len(ev.OCSPs))
	}
	for i, st := range ev.Statuses {
		if st.Source != "crl" {
			t.Errorf("status %d: source %q, want crl", i, st.Source)
		}
	}

	// The CRL says revoked too (a checker of its own: the first cached
	// the good answer).
	ch.IntermediateOCSP.Revoke(ch.Leaf.Cert)
	_, err = check(t, New(Config{}), ch.Certs(), time.Time{})
	var re *RevokedError
	if !errors.As(err, &re) || !re.Cert.Equal(ch.Leaf.Cert) {
		t.Fatalf("err = %v, want the leaf revoked by the CRL", err)
	}
}

func TestAllSourcesDown(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: root.Cert, Key: root.Key})
	crl := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(crl.Close)
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{
		OCSP: []string{resp.URL, "https://ocsp.example/"},
		CRL:  []string{crl.URL + "/ca.crl", "ldap://ldap.example/cn=ca"},
	})
	resp.Close()
	_, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{resp.URL, crl.URL, "404", "https://ocsp.example/: not an http:// URL, skipped", "ldap://ldap.example/cn=ca: not an http:// URL, skipped"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestDelegatedResponder(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	for _, tc := range []struct {
		name string
		eku  []x509.ExtKeyUsage
		ok   bool
	}{
		{"with OCSPSigning", []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}, true},
		{"without OCSPSigning", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delegate := root.Issue(t, "Responder", testenv.IssueOptions{ExtKeyUsage: tc.eku})
			resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: root.Cert, Key: root.Key, Signer: delegate.Cert, SignerKey: delegate.Key, NextUpdate: time.Hour})
			leaf := root.Issue(t, "Leaf", testenv.IssueOptions{OCSP: []string{resp.URL}})
			resp.Add(leaf.Cert)
			ev, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
			if !tc.ok {
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "id-kp-OCSPSigning") {
					t.Fatalf("err = %v, want refused for want of id-kp-OCSPSigning", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ev.Certs) != 1 || !ev.Certs[0].Equal(delegate.Cert) {
				t.Fatalf("evidence certs %v, want the delegated responder", ev.Certs)
			}
		})
	}
}

func TestResponseOfAnotherCA(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	other := testenv.NewRootPKI(t, "Root") // the same name, another key
	resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: other.Cert, Key: other.Key, NextUpdate: time.Hour})
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{OCSP: []string{resp.URL}})
	resp.Add(leaf.Cert)
	_, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}

	// A "good" answer, well formed for this leaf and issuer, naming the
	// issuer (by name) but signed with the other CA's key.
	forged := tinyResponder(t, root.Cert, other, ocsp.Good)
	_, err = check(t, New(Config{Responder: forged}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("err = %v, want the forged response refused", err)
	}
}

// tinyResponder answers every request with status, for the request's
// certificate, signed by signer; the answer carries no nonce.
func tinyResponder(t *testing.T, issuer *x509.Certificate, signer *testenv.PKICert, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		req, err := ocsp.ParseRequest(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		der, err := ocsp.CreateResponse(issuer, signer.Cert, ocsp.Response{
			Status: status, SerialNumber: req.SerialNumber,
			ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		}, signer.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestResponseWithoutNonce(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{})
	u := tinyResponder(t, root.Cert, root, ocsp.Good)
	ev, err := check(t, New(Config{Responder: u}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if err != nil || ev.Statuses[0].Source != "ocsp" {
		t.Fatalf("ev %+v, err %v; want good by ocsp", ev, err)
	}
}

// proxy forwards OCSP requests to target, counting them, and with
// otherNonce set replaces the request's nonce with another, which the
// responder then echoes.
type proxy struct {
	target     string
	otherNonce bool
	n          atomic.Int32
}

func (p *proxy) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.n.Add(1)
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if p.otherNonce {
			var req ocspRequest
			if _, err := asn1.Unmarshal(b, &req); err != nil || len(req.TBS.Extensions) != 1 {
				http.Error(w, "no nonce", http.StatusBadRequest)
				return
			}
			req.TBS.Extensions[0].Value, _ = asn1.Marshal(bytes.Repeat([]byte{7}, 32))
			b, _ = asn1.Marshal(req)
		}
		resp, err := http.Post(p.target, "application/ocsp-request", bytes.NewReader(b))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNonceMismatch(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: root.Cert, Key: root.Key, NextUpdate: time.Hour})
	p := &proxy{target: resp.URL, otherNonce: true}
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{OCSP: []string{p.start(t)}})
	resp.Add(leaf.Cert)
	_, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("err = %v, want the nonce refused", err)
	}
}

func TestCacheAndAfter(t *testing.T) {
	ch := testenv.NewChain(t)
	p := &proxy{target: ch.IntermediateOCSP.URL}
	c := New(Config{Responder: p.start(t)})
	chain := ch.Certs()[:2]
	ev, err := check(t, c, chain, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	first := ev.Statuses[0].ThisUpdate
	if _, err := check(t, c, chain, first); err != nil {
		t.Fatal(err)
	}
	if n := p.n.Load(); n != 1 {
		t.Fatalf("%d requests for two checks, want 1 (cached)", n)
	}

	// thisUpdate has whole seconds: a fresh response is later only
	// once the clock has passed the first one's second.
	after := first.Add(time.Nanosecond)
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if time.Now().Truncate(time.Second).Before(after) {
			return errors.New("same second")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ev, err = check(t, c, chain, after)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.n.Load(); n != 2 {
		t.Fatalf("%d requests, want 2: the cached response is older than after", n)
	}
	if ev.Statuses[0].ThisUpdate.Before(after) {
		t.Fatalf("thisUpdate %v is before %v", ev.Statuses[0].ThisUpdate, after)
	}
}

func TestStale(t *testing.T) {
	ch := testenv.NewChain(t)
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, err := check(t, New(Config{Now: later}), ch.Certs(), time.Time{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("err = %v, want stale evidence refused", err)
	}
}

func TestConcurrentChecks(t *testing.T) {
	ch := testenv.NewChain(t)
	c := New(Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.Check(t.Context(), ch.Certs(), time.Time{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestCanceled(t *testing.T) {
	ch := testenv.NewChain(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(Config{}).Check(ctx, ch.Certs(), time.Time{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrUnavailable and context.Canceled", err)
	}
}

func TestAnswersBoundedAndRedirectsHTTPOnly(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, maxOCSPBytes+1))
	}))
	t.Cleanup(big.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://127.0.0.1:1/ca.crl", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	root := testenv.NewRootPKI(t, "Root")
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{OCSP: []string{big.URL}, CRL: []string{redirect.URL}})
	_, err := check(t, New(Config{}), []*x509.Certificate{leaf.Cert, root.Cert}, time.Time{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "longer than 65536 bytes") ||
		!strings.Contains(err.Error(), "redirect to https://127.0.0.1:1/ca.crl: not an http:// URL") {
		t.Fatalf("err = %v", err)
	}
}
