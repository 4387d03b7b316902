package tsa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
)

// policy is the one testenv.StartTSA's openssl issues under.
var policy = asn1.ObjectIdentifier{1, 2, 3, 4, 1}

// authorityOf runs an openssl authority whose certificate ca issued, with
// the timeStamping extended key usage, critical (RFC 3161 §2.3). answer,
// when set, sees each query first (false answers 503).
func authorityOf(t *testing.T, ca *testenv.CA, answer func(*http.Request) bool) *testenv.TSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "Teken Test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{testenv.TSAExtension(t)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.StartTSA(t, testenv.TSAConfig{Cert: cert, Key: key, Answer: answer})
}

// observed is one ObserveTSA call.
type observed struct {
	url           string
	latency, skew time.Duration
	err           error
}

type recorder struct {
	mu  sync.Mutex
	got []observed
}

func (r *recorder) ObserveTSA(url string, latency, skew time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, observed{url, latency, skew, err})
}

func (r *recorder) calls() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observed(nil), r.got...)
}

var _ Observer = (*recorder)(nil)

// closedURL is a loopback address nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/tsa"
}

// proxy is a reverse proxy to backend, for what openssl's authority
// cannot do itself (authentication, TLS); guard, when set, may answer
// instead.
func proxy(t *testing.T, backend string, guard func(http.ResponseWriter, *http.Request) bool) http.Handler {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if guard != nil && !guard(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// serve runs h on 127.0.0.1 for the test.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/tsa"
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantRefused checks that Stamp failed with ErrTimestamp and that the
// error names each of urls with the reason containing want.
func wantRefused(t *testing.T, tok *Token, err error, want string, urls ...string) {
	t.Helper()
	if err == nil || tok != nil {
		t.Fatalf("Stamp: token %v, error %v; want a refusal", tok, err)
	}
	if !errors.Is(err, ErrTimestamp) {
		t.Fatalf("Stamp: %v does not match ErrTimestamp", err)
	}
	msg := err.Error()
	for _, u := range urls {
		if !strings.Contains(msg, u+": ") {
			t.Fatalf("Stamp: %q does not name %s", msg, u)
		}
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("Stamp: %q does not say %q", msg, want)
	}
	t.Log(msg)
}

// A good authority's token stamps the data, answers the nonce, and
// openssl's own verifier accepts it against the CA.
func TestStamp(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	var calls atomic.Int64
	a := authorityOf(t, ca, func(*http.Request) bool { calls.Add(1); return true })
	obs := &recorder{}
	c := newClient(t, Config{Authorities: []Authority{{URL: a.URL}}, Roots: ca.Pool(), Policy: policy, MaxSkew: time.Minute, Observer: obs})
	data := []byte("surat keluar 42")
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			tok, err := c.Stamp(context.Background(), h, data)
			if err != nil {
				t.Fatal(err)
			}
			if tok.URL != a.URL || !tok.Signer.Equal(a.Cert) || len(tok.Chain) != 2 ||
				!tok.Chain[0].Equal(a.Cert) || !tok.Chain[1].Equal(ca.Cert) {
				t.Fatalf("token from %s, signer %v, chain of %d", tok.URL, tok.Signer.Subject, len(tok.Chain))
			}
			ts, err := cms.VerifyTimestampToken(tok.DER, cms.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !ts.Stamps(data) || ts.Hash != h || !ts.Time.Equal(tok.GenTime) || !ts.Policy.Equal(policy) {
				t.Fatalf("token stamps %v %x at %v under %v", ts.Hash, ts.HashedMessage, ts.Time, ts.Policy)
			}
			d := h.New()
			d.Write(data)
			opensslVerify(t, tok.DER, d.Sum(nil), ca.CertFile)
		})
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("authority asked %d times, want 3", n)
	}
	for _, o := range obs.calls() {
		if o.url != a.URL || o.err != nil || o.latency <= 0 || o.skew < -time.Minute || o.skew > time.Minute {
			t.Fatalf("observed %+v", o)
		}
	}
	if _, err := c.Stamp(context.Background(), crypto.SHA1, data); !errors.Is(err, ErrTimestamp) {
		t.Fatalf("SHA-1: %v; want ErrTimestamp", err)
	}
}

func opensslVerify(t *testing.T, token, digest []byte, caFile string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.der")
	if err := os.WriteFile(path, token, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.LookPath(t, "openssl"), "ts", "-verify", "-token_in", "-in", path,
		"-digest", hex.EncodeToString(digest), "-CAfile", caFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Fatalf("openssl ts -verify: %v\n%s", err, out)
	}
}

// The first authority down, the second answers; all of them failing is
// one error naming each.
func TestFailOver(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	good := authorityOf(t, ca, nil)
	down := closedURL(t)
	busy := authorityOf(t, ca, func(*http.Request) bool { return false })
	obs := &recorder{}
	c := newClient(t, Config{Authorities: []Authority{{URL: down}, {URL: good.URL}}, Observer: obs})
	tok, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.URL != good.URL || len(tok.Chain) != 1 || !tok.Chain[0].Equal(good.Cert) {
		t.Fatalf("token from %s with a chain of %d", tok.URL, len(tok.Chain))
	}
	got := obs.calls()
	if len(got) != 2 || got[0].url != down || got[0].err == nil || got[0].skew != 0 ||
		got[1].url != good.URL || got[1].err != nil {
		t.Fatalf("observed %+v", got)
	}

	c = newClient(t, Config{Authorities: []Authority{{URL: down}, {URL: busy.URL}}})
	tok, err = c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "503", down, busy.URL)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("%v: does not say the first was refused", err)
	}
}

func TestBasicAuth(t *testing.T) {
	const user, password = "terminal-7", "s3cret-Pa55"
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	var seen atomic.Int64
	backend := authorityOf(t, ca, func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		seen.Add(1)
		return ok && u == user && p == password
	})
	front := serve(t, proxy(t, backend.URL, func(w http.ResponseWriter, r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		if ok && u == user && p == password {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="tsa"`)
		http.Error(w, "who are you", http.StatusUnauthorized)
		return false
	}))
	for _, tc := range []struct {
		name, user, password, want string
	}{
		{"given", user, password, ""},
		{"wrong password", user, "not-" + password, "401 Unauthorized"},
		{"none", "", "", "401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, Config{Authorities: []Authority{{URL: front, Username: tc.user, Password: tc.password}}})
			tok, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, tok, err, tc.want, front)
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("the authority behind the guard was asked %d times, want 1", n)
	}
}

// An https authority that requires a client certificate: given, the
// token comes; missing, or the server's CA not trusted, it does not.
func TestClientCertificate(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TLS CA")
	backend := authorityOf(t, ca, nil)
	var clients atomic.Int64
	srv := httptest.NewUnstartedServer(proxy(t, backend.URL, func(w http.ResponseWriter, r *http.Request) bool {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "terminal-7" {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return false
		}
		clients.Add(1)
		return true
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t).TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u := srv.URL + "/tsa"
	client := ca.Client(t, "terminal-7")

	c := newClient(t, Config{Authorities: []Authority{{URL: u, ClientCert: &client.TLS, RootCAs: ca.Pool()}}, Roots: ca.Pool()})
	tok, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.URL != u || clients.Load() != 1 {
		t.Fatalf("token from %s, %d clients seen", tok.URL, clients.Load())
	}

	c = newClient(t, Config{Authorities: []Authority{{URL: u, RootCAs: ca.Pool()}}})
	tok, err = c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "certificate required", u)

	c = newClient(t, Config{Authorities: []Authority{{URL: u, ClientCert: &client.TLS, RootCAs: testenv.NewCA(t, "Other").Pool()}}})
	tok, err = c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "certificate signed by unknown authority", u)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("%v: not an x509.UnknownAuthorityError", err)
	}
	if clients.Load() != 1 {
		t.Fatalf("%d clients got through, want 1", clients.Load())
	}
}

// Each attempt has its own deadline; once the caller's context ends no
// other authority is asked.
func TestContext(t *testing.T) {
	hang := func(cancel context.CancelFunc) string {
		return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if cancel != nil {
				cancel()
			}
			<-r.Context().Done()
		}))
	}
	slow := hang(nil)
	c := newClient(t, Config{Authorities: []Authority{{URL: slow}}, Timeout: 100 * time.Millisecond})
	tok, err := c.Stamp(context.Background(), crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "no answer within 100ms", slow)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v: not context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stops := hang(cancel)
	never := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("asked after the context ended")
		http.Error(w, "no", http.StatusTeapot)
	}))
	c = newClient(t, Config{Authorities: []Authority{{URL: stops}, {URL: never}}})
	tok, err = c.Stamp(ctx, crypto.SHA256, []byte("data"))
	wantRefused(t, tok, err, "1 not tried: context canceled", stops)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v: not context.Canceled", err)
	}
}

func TestNew(t *testing.T) {
	client := testenv.NewCA(t, "Teken Test TLS CA").Client(t, "terminal-7")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no authority", Config{}, "no timestamp authority"},
		{"scheme", Config{Authorities: []Authority{{URL: "ftp://tsa.example/"}}}, "scheme must be http or https"},
		{"no host", Config{Authorities: []Authority{{URL: "http:///tsa"}}}, "no host"},
		{"unparsable", Config{Authorities: []Authority{{URL: "http://[::1"}}}, "does not parse"},
		{"credentials in URL", Config{Authorities: []Authority{{URL: "https://u:hunter2@tsa.example/"}}}, "credentials belong in Username"},
		{"password alone", Config{Authorities: []Authority{{URL: "https://tsa.example/", Password: "hunter2"}}}, "password without a username"},
		{"client certificate over http", Config{Authorities: []Authority{{URL: "http://tsa.example/", ClientCert: &client.TLS}}}, "need an https URL"},
		{"second authority", Config{Authorities: []Authority{{URL: "https://tsa.example/"}, {URL: "tsa.example"}}}, "authority 2"},
		{"negative timeout", Config{Authorities: []Authority{{URL: "https://tsa.example/"}}, Timeout: -time.Second}, "negative"},
		{"negative skew", Config{Authorities: []Authority{{URL: "https://tsa.example/"}}, MaxSkew: -time.Second}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if err == nil || c != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if errors.Is(err, ErrTimestamp) {
				t.Fatalf("a configuration error matches ErrTimestamp: %v", err)
			}
		})
	}
}
