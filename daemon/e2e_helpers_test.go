package daemon_test

import (
	"bufio"
	"bytes"
	"context"
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
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/testenv"
)

// official is a software token with a signing certificate from the test CA.
type official struct {
	card *pivsim.Card
	cert *x509.Certificate
	hash string
	pin  string
	name string
}

// signerCA issues signer certificates, as a provincial CA would.
type signerCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemPath string
}

func newSignerCA(t testing.TB) *signerCA {
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
	return &signerCA{cert: cert, key: key, pemPath: p}
}

func (ca *signerCA) newOfficial(t testing.TB, name, nip, pin string, serial uint32) *official {
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.SetCertificate(pivsim.SlotSignature, der); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	return &official{card: card, cert: cert, hash: hex.EncodeToString(sum[:]), pin: pin, name: name}
}

// terminal is a running tekend with its broker, pcscd and a central side.
type terminal struct {
	t        testing.TB
	id       string
	pcscd    *testenv.PCSCD
	broker   *testenv.Mosquitto
	logs     *syncBuffer
	dataDir  string
	kioskURL string
	metrics  string
	central  *api.Dispatcher
	signer   *api.Signer
	results  chan *api.Result
	receipts chan *api.Receipt
	wire     *syncBuffer // every message seen on the broker
	stop     func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func startTerminal(t testing.TB, ca *signerCA, adjust ...func(*daemon.Config)) *terminal {
	t.Helper()
	tm := &terminal{t: t, id: "kendari-setda-01", logs: &syncBuffer{}, wire: &syncBuffer{},
		results: make(chan *api.Result, 100), receipts: make(chan *api.Receipt, 100)}
	tm.pcscd = testenv.StartPCSCD(t)
	tm.broker = testenv.StartMosquitto(t)
	dir := t.TempDir()
	tm.dataDir = filepath.Join(dir, "data")

	key, err := api.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := api.MarshalPublicKeyPEM(key.Public())
	keyFile := filepath.Join(dir, "dispatcher.pub")
	if err := os.WriteFile(keyFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tm.signer, err = api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.TerminalID = tm.id
	cfg.DataDir = tm.dataDir
	cfg.Broker.URLs = []string{tm.broker.URL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{keyFile}
	cfg.Kiosk.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Status.MinInterval = daemon.Duration(time.Second)
	if ca != nil {
		cfg.Signing.SignerCAFiles = []string{ca.pemPath}
	}
	for _, f := range adjust {
		f(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(tm.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: log, Ready: func(k, m string) { ready <- [2]string{k, m} }})
	}()
	select {
	case addrs := <-ready:
		tm.kioskURL, tm.metrics = "http://"+addrs[0], "http://"+addrs[1]
	case err := <-done:
		t.Fatalf("tekend exited: %v\n%s", err, tm.logs.Bytes())
	case <-time.After(30 * time.Second):
		t.Fatalf("tekend not ready\n%s", tm.logs.Bytes())
	}
	var once sync.Once
	tm.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("tekend: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("tekend did not stop\n%s", tm.logs.Bytes())
			}
		})
	}
	t.Cleanup(tm.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tekend log:\n%s", tm.logs.Bytes())
		}
	})

	tm.central, err = api.OpenDispatcher(api.DispatcherConfig{
		Connection: api.Connection{Brokers: []string{tm.broker.URL}, ClientID: "central-test"},
		Signer:     tm.signer,
		OnResult: func(_ context.Context, r *api.Result) error {
			tm.results <- r
			return nil
		},
		OnReceipt: func(_ context.Context, r *api.Receipt) { tm.receipts <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.central.Close(context.Background()) })
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := tm.central.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	tm.tapWire()
	return tm
}

// tapWire records every message on the broker, for the PIN search.
func (tm *terminal) tapWire() {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(tm.broker.URL).SetClientID("wire-tap"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tm.t.Fatalf("wire tap: %v", tok.Error())
	}
	tm.t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("#", 1, func(_ mqtt.Client, m mqtt.Message) {
		fmt.Fprintf(tm.wire, "%s %s\n", m.Topic(), m.Payload())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tm.t.Fatalf("wire tap: %v", tok.Error())
	}
}

// dispatch sends one letter, a PDF, to signer and waits for its receipt.
func (tm *terminal) dispatch(signer *official, title, number string) *api.Job {
	tm.t.Helper()
	body := demo.LetterPDF("Dinas Komunikasi dan Informatika", number, title,
		"Dengan hormat, surat ini dibuat untuk pengujian terminal tanda tangan.")
	return tm.dispatchDocs(signer, title, number, api.NewDocument("surat", "surat.pdf", "application/pdf", body))
}

// dispatchDocs sends a job with the given documents and waits for its
// receipt.
func (tm *terminal) dispatchDocs(signer *official, title, number string, docs ...api.Document) *api.Job {
	tm.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	j := &api.Job{
		V: api.Version, JobID: api.NewJobID(), Terminal: tm.id, IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: signer.hash, Name: signer.name},
		Title:  title, Number: number, Sender: "Dinas Komunikasi dan Informatika",
		Documents: docs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tm.central.Publish(ctx, j); err != nil {
		tm.t.Fatalf("publish job: %v", err)
	}
	tm.awaitReceipt(j.JobID, api.ReceiptStored)
	return j
}

// awaitReceipt waits for a receipt of one job; receipts of others (a Sync
// may make the central side publish a job again) are passed over.
func (tm *terminal) awaitReceipt(jobID string, status api.ReceiptStatus) {
	tm.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case r := <-tm.receipts:
			if r.JobID != jobID {
				continue
			}
			if r.Status != status {
				tm.t.Fatalf("receipt %+v, want status %s", r, status)
			}
			return
		case <-deadline:
			tm.t.Fatalf("no %s receipt for job %s\n%s", status, jobID, tm.logs.Bytes())
		}
	}
}

// kioskClient drives the kiosk API exactly as the page does.
type kioskClient struct {
	t     testing.TB
	base  string
	csrf  string
	views chan kiosk.View
}

func (tm *terminal) kiosk() *kioskClient {
	t := tm.t
	t.Helper()
	res, err := http.Get(tm.kioskURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page")
	}
	k := &kioskClient{t: t, base: tm.kioskURL, csrf: string(m[1]), views: make(chan kiosk.View, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tm.kioskURL+"/api/events", nil)
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
					select {
					case k.views <- v:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return k
}

// await returns the first view that satisfies ok.
func (k *kioskClient) await(what string, ok func(kiosk.View) bool) kiosk.View {
	k.t.Helper()
	deadline := time.After(20 * time.Second)
	var last kiosk.View
	for {
		select {
		case v := <-k.views:
			last = v
			if ok(v) {
				return v
			}
		case <-deadline:
			k.t.Fatalf("kiosk never showed %s; last view %+v", what, last)
		}
	}
}

func (k *kioskClient) post(path string, body any) (int, map[string]any) {
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

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}
