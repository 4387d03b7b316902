// Package tekentest runs a whole terminal for end-to-end tests: a real
// tekend (daemon.Run in the test process), a private Mosquitto and pcscd,
// software tokens with certificates from a test CA, the central library,
// and a client that drives the kiosk API exactly as the page does.
package tekentest

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// Official is a software token with a signing certificate from the test CA.
type Official struct {
	Card *pivsim.Card
	Cert *x509.Certificate
	Hash string // SHA-256 of the certificate, the signer's identity
	PIN  string
	Name string
}

// SignerCA issues signer certificates, as a provincial CA would.
type SignerCA struct {
	Cert    *x509.Certificate
	key     crypto.Signer
	PEMPath string
}

// SignerCAOf issues officials' certificates with an existing CA (cert and
// key), and writes the certificates of signer_ca_files — the CA's and any
// above it — as PEM.
func SignerCAOf(t testing.TB, cert *x509.Certificate, key crypto.Signer, caFiles ...*x509.Certificate) *SignerCA {
	t.Helper()
	var out []byte
	for _, c := range caFiles {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	p := filepath.Join(t.TempDir(), "signer-cas.pem")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return &SignerCA{Cert: cert, key: key, PEMPath: p}
}

// NewSignerCA makes a CA whose certificate is written as PEM for tekend's
// signer_ca_files.
func NewSignerCA(t testing.TB) *SignerCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Teken Test Signer CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := filepath.Join(t.TempDir(), "signer-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &SignerCA{Cert: cert, key: key, PEMPath: p}
}

// NewOfficial makes a software token holding a P-256 key in 9c (PIN policy
// always) with a certificate for name and NIP from this CA, valid from an
// hour ago for a day; adjust may change the certificate before it is issued.
func (ca *SignerCA) NewOfficial(t testing.TB, name, nip, pin string, serial uint32, adjust ...func(*x509.Certificate)) *Official {
	t.Helper()
	card, err := pivsim.New(pivsim.Config{Serial: serial, PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	pub, err := card.GenerateKey(pivsim.SlotSignature, pivsim.AlgECCP256, pivsim.PINPolicyAlways, pivsim.TouchPolicyNever)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(serial)),
		Subject:      pkix.Name{CommonName: name, SerialNumber: nip, Organization: []string{"Pemerintah Provinsi Sulawesi Tenggara"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	for _, f := range adjust {
		f(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.SetCertificate(pivsim.SlotSignature, der); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	return &Official{Card: card, Cert: cert, Hash: hex.EncodeToString(sum[:]), PIN: pin, Name: name}
}

// Terminal is a running tekend with its broker, pcscd and a central side.
type Terminal struct {
	t          testing.TB
	ID         string
	PCSCD      *testenv.PCSCD
	Broker     *testenv.Mosquitto
	Logs       *SyncBuffer // tekend's log
	DataDir    string
	KioskURL   string
	MetricsURL string
	Central    *transport.Dispatcher
	Signer     *api.Signer // the dispatcher key the terminal trusts
	Results    chan *api.Result
	Receipts   chan *api.Receipt
	Wire       *SyncBuffer // every message seen on the broker
	Stop       func()      // stops tekend; safe to call again
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Bytes returns a copy of what was written.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// Start runs a terminal with its own pcscd, broker, dispatcher key and
// central side; ca, when not nil, is the only CA its signers may chain to.
// adjust changes the configuration before tekend starts.
func Start(t testing.TB, ca *SignerCA, adjust ...func(*daemon.Config)) *Terminal {
	t.Helper()
	tm := &Terminal{t: t, ID: "kendari-setda-01", Logs: &SyncBuffer{}, Wire: &SyncBuffer{},
		Results: make(chan *api.Result, 100), Receipts: make(chan *api.Receipt, 100)}
	tm.PCSCD = testenv.StartPCSCD(t)
	tm.Broker = testenv.StartMosquitto(t)
	dir := t.TempDir()
	tm.DataDir = filepath.Join(dir, "data")

	key, err := api.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := api.MarshalPublicKeyPEM(key.Public())
	keyFile := filepath.Join(dir, "dispatcher.pub")
	if err := os.WriteFile(keyFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tm.Signer, err = api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.TerminalID = tm.ID
	cfg.DataDir = tm.DataDir
	cfg.Broker.URLs = []string{tm.Broker.URL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{keyFile}
	cfg.Kiosk.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Status.MinInterval = daemon.Duration(time.Second)
	cfg.Token.RefuseDefaultPIN = false // the software tokens keep the factory PIN 123456
	if ca != nil {
		cfg.Signing.SignerCAFiles = []string{ca.PEMPath}
	}
	for _, f := range adjust {
		f(&cfg)
	}
	tm.KioskURL, tm.MetricsURL, tm.Stop = RunTekend(t, cfg, tm.Logs)

	tm.Central, err = transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{tm.Broker.URL}, ClientID: "central-test"},
		Signer:     tm.Signer,
		OnResult: func(_ context.Context, r *api.Result) error {
			tm.Results <- r
			return nil
		},
		OnReceipt: func(_ context.Context, r *api.Receipt) { tm.Receipts <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Central.Close(context.Background()) })
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := tm.Central.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	tm.tapWire()
	return tm
}

// RunTekend runs tekend in the test process with cfg until the test ends,
// its log in logs, and returns the kiosk and metrics URLs and a stop
// function that is safe to call more than once.
func RunTekend(t testing.TB, cfg daemon.Config, logs *SyncBuffer) (kioskURL, metricsURL string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: log, Ready: func(k, m string) { ready <- [2]string{k, m} }})
	}()
	select {
	case addrs := <-ready:
		kioskURL, metricsURL = "http://"+addrs[0], "http://"+addrs[1]
	case err := <-done:
		cancel()
		t.Fatalf("tekend exited: %v\n%s", err, logs.Bytes())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("tekend not ready\n%s", logs.Bytes())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("tekend: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("tekend did not stop\n%s", logs.Bytes())
			}
		})
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tekend log:\n%s", logs.Bytes())
		}
	})
	return kioskURL, metricsURL, stop
}

// tapWire records every message on the broker, for the PIN search.
func (tm *Terminal) tapWire() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: transport.Connection{Brokers: []string{tm.Broker.URL}, ClientID: "wire-tap", Logger: slog.New(slog.DiscardHandler)},
		Filters:    []string{"#"},
		Handle: func(m transport.Message) {
			fmt.Fprintf(tm.Wire, "%s %s\n", m.Topic, m.Payload)
		},
	})
	if err != nil {
		tm.t.Fatalf("wire tap: %v", err)
	}
	tm.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
}

// Dispatch sends one letter, a PDF, to signer and waits for its receipt.
func (tm *Terminal) Dispatch(signer *Official, title, number string) *api.Job {
	tm.t.Helper()
	body := demo.LetterPDF("Dinas Komunikasi dan Informatika", number, title,
		"Dengan hormat, surat ini dibuat untuk pengujian terminal tanda tangan.")
	return tm.DispatchDocs(signer, title, number, api.NewDocument("surat", "surat.pdf", "application/pdf", body))
}

// DispatchDocs sends a job with the given documents and waits for its
// receipt.
func (tm *Terminal) DispatchDocs(signer *Official, title, number string, docs ...api.Document) *api.Job {
	tm.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	j := &api.Job{
		V: api.Version, JobID: api.NewJobID(), Terminal: tm.ID, IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: signer.Hash, Name: signer.Name},
		Title:  title, Number: number, Sender: "Dinas Komunikasi dan Informatika",
		Documents: docs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tm.Central.Publish(ctx, j); err != nil {
		tm.t.Fatalf("publish job: %v", err)
	}
	tm.AwaitReceipt(j.JobID, api.ReceiptStored)
	return j
}

// DispatchJob publishes j, its id, terminal and window filled in where
// empty, and waits for the receipt status want.
func (tm *Terminal) DispatchJob(j *api.Job, want api.ReceiptStatus) *api.Job {
	tm.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	if j.JobID == "" {
		j.JobID = api.NewJobID()
	}
	if j.Terminal == "" {
		j.Terminal = tm.ID
	}
	if j.IssuedAt.IsZero() {
		j.IssuedAt, j.ExpiresAt = now, now.Add(24*time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tm.Central.Publish(ctx, j); err != nil {
		tm.t.Fatalf("publish job: %v", err)
	}
	tm.AwaitReceipt(j.JobID, want)
	return j
}

// AwaitReceipt waits for a receipt of one job; receipts of others (a Sync
// may make the central side publish a job again) are passed over.
func (tm *Terminal) AwaitReceipt(jobID string, status api.ReceiptStatus) {
	tm.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case r := <-tm.Receipts:
			if r.JobID != jobID {
				continue
			}
			if r.Status != status {
				tm.t.Fatalf("receipt %+v, want status %s", r, status)
			}
			return
		case <-deadline:
			tm.t.Fatalf("no %s receipt for job %s\n%s", status, jobID, tm.Logs.Bytes())
		}
	}
}

// Kiosk drives the kiosk API exactly as the page does: it reads the CSRF
// token from the page, follows the event stream and posts JSON.
type Kiosk struct {
	t    testing.TB
	base string
	csrf string
	// Views are the page states as the event stream delivers them.
	Views chan kiosk.View
	// Close ends the event stream, as closing the browser does.
	Close context.CancelFunc

	mu     sync.Mutex
	latest kiosk.View // the last view the stream delivered, for Read
}

// Kiosk opens the terminal's kiosk page.
func (tm *Terminal) Kiosk() *Kiosk { return OpenKiosk(tm.t, tm.KioskURL) }

// OpenKiosk opens the kiosk page at base, as a browser would.
func OpenKiosk(t testing.TB, base string) *Kiosk {
	t.Helper()
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k := &Kiosk{t: t, base: base, csrf: string(m[1]), Views: make(chan kiosk.View, 64), Close: cancel}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	ev, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer ev.Body.Close()
		sc := bufio.NewScanner(ev.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v kiosk.View
				if json.Unmarshal([]byte(data), &v) == nil {
					k.mu.Lock()
					k.latest = v
					k.mu.Unlock()
					select {
					case k.Views <- v:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return k
}

// Await returns the first view that satisfies ok.
func (k *Kiosk) Await(what string, ok func(kiosk.View) bool) kiosk.View {
	k.t.Helper()
	deadline := time.After(20 * time.Second)
	var last kiosk.View
	for {
		select {
		case v := <-k.Views:
			last = v
			if ok(v) {
				return v
			}
		case <-deadline:
			k.t.Fatalf("kiosk never showed %s; last view %+v", what, last)
		}
	}
}

// Post sends a state change as the page does and returns the status and the
// decoded JSON answer.
func (k *Kiosk) Post(path string, body any) (int, map[string]any) {
	k.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, k.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", k.base)
	req.Header.Set("X-Teken-CSRF", k.csrf)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// Open fetches one document as the page does to show it, and returns the
// status (0 when tekend did not answer) and the body. A document served
// counts as viewed by the official in this token session.
func (k *Kiosk) Open(jobID string, index int) (int, []byte) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/documents/%s/%d", k.base, jobID, index), nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// Read opens every document of the named letters that the page can show
// (available and renderable), as the official does before signing them:
// tekend signs a letter only once each of those was served in this token
// session. The letters must be in the latest view the stream delivered.
// It reports instead of failing, so it may run beside the test.
func (k *Kiosk) Read(jobIDs ...string) error {
	k.mu.Lock()
	v := k.latest
	k.mu.Unlock()
	for _, id := range jobIDs {
		i := slices.IndexFunc(v.Jobs, func(j kiosk.Job) bool { return j.ID == id })
		if i < 0 {
			return fmt.Errorf("letter %s is not on the page (state %s, %d letters)", id, v.State, len(v.Jobs))
		}
		for _, d := range v.Jobs[i].Documents {
			if !d.Available || !d.Renderable {
				continue
			}
			if code, _ := k.Open(id, d.Index); code != http.StatusOK {
				return fmt.Errorf("open document %d of letter %s: status %d", d.Index, id, code)
			}
		}
	}
	return nil
}

// Sign signs the letters with pin as the official does at the page: it
// opens each letter's documents (Read), then posts the sign request. It
// returns the status and the decoded JSON answer.
func (k *Kiosk) Sign(jobIDs []string, pin string) (int, map[string]any) {
	k.t.Helper()
	if err := k.Read(jobIDs...); err != nil {
		k.t.Errorf("sign: %v", err)
		return 0, nil
	}
	return k.Post("/api/sign", map[string]any{"job_ids": jobIDs, "pin": pin})
}

// ErrorCode is the catalogue code of an error answer, or "".
func ErrorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// generalAuthenticate is the INS of GENERAL AUTHENTICATE, the PIV command
// that signs (SP 800-73-4 Part 2 §3.2.4).
const generalAuthenticate = 0x87

// HoldSignature makes the token hang on its next signature, as a token
// waiting for a touch does. held is closed when the card is holding; release
// lets it answer. Later signatures are not held.
func (o *Official) HoldSignature() (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var once, done sync.Once
	o.Card.OnCommand(func(ins byte) {
		if ins == generalAuthenticate {
			once.Do(func() { close(h); <-r })
		}
	})
	return h, func() { done.Do(func() { close(r) }) }
}

// RemoveOnSignature takes the token off the reader when the card receives
// its n-th signature command from now, so that signature never completes.
func (o *Official) RemoveOnSignature(n int) {
	seen := 0
	o.Card.OnCommand(func(ins byte) {
		if ins == generalAuthenticate {
			if seen++; seen == n {
				o.Card.Remove()
			}
		}
	})
}

// SignInBackground opens the letters' documents (Read) and then posts a
// signing request as the page does, without waiting for it: the returned
// channel yields the HTTP status once it answers.
func (k *Kiosk) SignInBackground(jobIDs []string, pin string) <-chan int {
	k.t.Helper()
	if err := k.Read(jobIDs...); err != nil {
		k.t.Fatalf("sign: %v", err)
	}
	done := make(chan int, 1)
	go func() {
		code, _ := k.Post("/api/sign", map[string]any{"job_ids": jobIDs, "pin": pin})
		done <- code
	}()
	return done
}
