package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
)

// tamper is an authority that changes each query with f before openssl
// answers it: the token is genuine, and answers another query.
func tamper(t *testing.T, backend string, f func(*timestamp.Request)) string {
	t.Helper()
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f(q)
		changed, err := q.Marshal()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fwd, err := http.NewRequestWithContext(r.Context(), http.MethodPost, backend, bytes.NewReader(changed))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fwd.Header.Set("Content-Type", "application/timestamp-query")
		resp, err := http.DefaultClient.Do(fwd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
}

// The requested policy is asked for and must be the token's.
func TestPolicy(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	a := authorityOf(t, ca, nil)
	other := asn1.ObjectIdentifier{1, 2, 3, 4, 2}
	// Asks for no policy whatever the client asked: openssl then issues
	// under its default.
	ignores := tamper(t, a.URL, func(q *timestamp.Request) { q.TSAPolicyOID = nil })

	tok, err := newClient(t, Config{Authorities: []Authority{{URL: a.URL}}, Policy: policy}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := cms.VerifyTimestampToken(tok.DER, cms.VerifyOptions{})
	if err != nil || !ts.Policy.Equal(policy) {
		t.Fatalf("token policy %v, %v", ts.Policy, err)
	}

	// openssl refuses a policy it does not issue under.
	tok, err = newClient(t, Config{Authorities: []Authority{{URL: a.URL}}, Policy: other}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "policy is not supported", a.URL)

	// A token granted under another policy than asked for is refused.
	tok, err = newClient(t, Config{Authorities: []Authority{{URL: ignores}}, Policy: other}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "token policy 1.2.3.4.1, asked for 1.2.3.4.2", ignores)
}

// A granted token that answers another query (imprint, nonce) is refused,
// and the next authority asked.
func TestAnswersTheQuery(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	a := authorityOf(t, ca, nil)
	for _, tc := range []struct {
		name string
		f    func(*timestamp.Request)
		want string
	}{
		{"imprint", func(q *timestamp.Request) { q.HashedMessage[0] ^= 1 }, "another message imprint"},
		{"hash", func(q *timestamp.Request) {
			d := sha256.Sum256([]byte("data"))
			q.HashAlgorithm, q.HashedMessage = crypto.SHA256, d[:]
		}, "another message imprint"},
		{"nonce", func(q *timestamp.Request) { q.Nonce.Add(q.Nonce, big.NewInt(1)) }, "nonce does not match"},
		{"no nonce", func(q *timestamp.Request) { q.Nonce = nil }, "nonce does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tamper(t, a.URL, tc.f)
			tok, err := newClient(t, Config{Authorities: []Authority{{URL: bad}}}).Stamp(context.Background(), crypto.SHA384, []byte("data"))
			wantRefused(t, tok, err, tc.want, bad)

			obs := &recorder{}
			c := newClient(t, Config{Authorities: []Authority{{URL: bad}, {URL: a.URL}}, Observer: obs})
			tok, err = c.Stamp(context.Background(), crypto.SHA384, []byte("data"))
			if err != nil || tok.URL != a.URL {
				t.Fatalf("fail-over: %v", err)
			}
			if got := obs.calls(); len(got) != 2 || got[0].err == nil || got[0].skew != 0 || got[1].err != nil {
				t.Fatalf("observed %+v", got)
			}
		})
	}
}

// With Roots, the authority's certificate must chain to them at genTime.
func TestChain(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	stranger := testenv.NewCA(t, "Teken Test Stranger CA")
	trusted := authorityOf(t, ca, nil)
	untrusted := authorityOf(t, stranger, nil)

	tok, err := newClient(t, Config{Authorities: []Authority{{URL: untrusted.URL}}, Roots: ca.Pool()}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "authority certificate at genTime", untrusted.URL)
	if !errors.Is(err, cms.ErrUntrusted) {
		t.Fatalf("%v: not cms.ErrUntrusted", err)
	}

	// Intermediates are used: the CA as an intermediate under no root
	// still does not make a chain.
	inter := x509.NewCertPool()
	inter.AddCert(ca.Cert)
	tok, err = newClient(t, Config{Authorities: []Authority{{URL: trusted.URL}}, Roots: stranger.Pool(), Intermediates: inter}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "authority certificate at genTime", trusted.URL)

	obs := &recorder{}
	c := newClient(t, Config{Authorities: []Authority{{URL: untrusted.URL}, {URL: trusted.URL}}, Roots: ca.Pool(), Observer: obs})
	tok, err = c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.URL != trusted.URL || len(tok.Chain) != 2 || !tok.Chain[1].Equal(ca.Cert) {
		t.Fatalf("token from %s, chain of %d", tok.URL, len(tok.Chain))
	}
	// The refused token answered the query: its skew is reported.
	if got := obs.calls(); len(got) != 2 || got[0].err == nil || got[0].skew == 0 ||
		got[0].skew < -time.Minute || got[0].skew > time.Minute {
		t.Fatalf("observed %+v", got)
	}
}

// A local clock 10 minutes ahead of the authority's refuses its token
// when 5 minutes are allowed; the observer sees the skew.
func TestSkew(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	a := authorityOf(t, ca, nil)
	obs := &recorder{}
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }
	c := newClient(t, Config{Authorities: []Authority{{URL: a.URL}}, MaxSkew: 5 * time.Minute, Now: ahead, Observer: obs})
	tok, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "from the local clock, more than the 5m0s allowed", a.URL)
	got := obs.calls()
	// genTime is whole seconds (openssl's accuracy secs:1).
	if len(got) != 1 || got[0].err == nil || got[0].latency <= 0 ||
		got[0].skew > -10*time.Minute+2*time.Second || got[0].skew < -11*time.Minute {
		t.Fatalf("observed %+v; want a skew of about -10m", got)
	}

	// Within the allowance the same authority is fine.
	c = newClient(t, Config{Authorities: []Authority{{URL: a.URL}}, MaxSkew: 15 * time.Minute, Now: ahead})
	if _, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data")); err != nil {
		t.Fatal(err)
	}
}
