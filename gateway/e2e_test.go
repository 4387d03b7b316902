package gateway_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

const terminalID = "kendari-setda-01"

// rig is a gateway, a terminal (tekend in this process) with pcscd and an
// official's software token, one Mosquitto, and a letter system's webhook
// endpoint.
type rig struct {
	t        *testing.T
	api      string // the gateway's base URL
	key      string // the letter system's API key
	kioskURL string
	official *tekentest.Official
	pcscd    *testenv.PCSCD
	hooks    *hookSink
	gw       *gateway.Gateway
	cfg      gateway.Config
	stop     func() // stops the gateway; safe to call again
}

// hookSink is the letter system's webhook endpoint: it checks each
// delivery's signature and keeps the bodies.
type hookSink struct {
	secret []byte
	mu     sync.Mutex
	events []gateway.WebhookEvent
	bad    []string
	fail   int // answer 503 to this many deliveries first
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := verifySignature(h.secret, body, r.Header.Get(gateway.SignatureHeader), time.Now()); err != nil {
		h.bad = append(h.bad, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if h.fail > 0 {
		h.fail--
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var ev gateway.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		h.bad = append(h.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.events = append(h.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

// verifySignature checks a Teken-Signature header as GATEWAY.md tells a
// letter system to: the HMAC over "t.body", and t within five minutes.
func verifySignature(secret, body []byte, header string, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("signature header %q: no time", header)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("signature time %s is too far from now", time.Unix(sec, 0))
	}
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s.", ts)
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return fmt.Errorf("signature %q does not verify", sig)
	}
	return nil
}

// states are the states the deliveries of a letter's events told, in
// the order of the events: a delivery tried again may arrive after a
// later one, and its seq says where it belongs. Each event counts once,
// however often it was delivered.
func (h *hookSink) states(letter string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	bySeq := map[uint64]string{}
	var seqs []uint64
	for _, ev := range h.events {
		if ev.Letter.ID != letter {
			continue
		}
		if _, seen := bySeq[ev.Seq]; !seen {
			seqs = append(seqs, ev.Seq)
		}
		bySeq[ev.Seq] = string(ev.Letter.State)
	}
	slices.Sort(seqs)
	var out []string
	for _, s := range seqs {
		out = append(out, bySeq[s])
	}
	return out
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, hooks: &hookSink{secret: []byte("a webhook secret of the letter system")}}
	dir := t.TempDir()
	r.pcscd = testenv.StartPCSCD(t)
	broker := testenv.StartMosquitto(t)
	ca := tekentest.NewSignerCA(t)
	r.official = ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7001)

	write := fileWriter(t, dir)
	var keyFile string
	r.kioskURL, keyFile = startTerminal(t, dir, broker.URL, ca)

	sink := httptest.NewServer(r.hooks)
	t.Cleanup(sink.Close)
	apiKey, hash := gateway.NewAPIKey()
	r.key = apiKey
	gcfg := gateway.DefaultConfig()
	gcfg.Listen = "127.0.0.1:0"
	gcfg.Store.Path = filepath.Join(dir, "gateway", "gateway.db")
	gcfg.Broker.URLs = []string{broker.URL}
	gcfg.Broker.ClientID = "gateway-test"
	gcfg.DispatcherKeyFile = keyFile
	gcfg.SignerCertFiles = []string{write("officials.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.official.Cert.Raw}))}
	gcfg.SignerCAFiles = []string{ca.PEMPath}
	gcfg.Webhook.MinBackoff = gateway.Duration{Duration: 100 * time.Millisecond}
	gcfg.Webhook.MaxBackoff = gateway.Duration{Duration: time.Second}
	gcfg.Clients = []gateway.ClientConfig{{ID: "sisumaker", KeySHA256: []string{hash}, Terminals: []string{"kendari-*"},
		Webhooks: []gateway.EndpointConfig{{Name: "main", URL: sink.URL + "/teken", SecretFile: write("hook.secret", r.hooks.secret)}}}}
	otherKey, otherHash := gateway.NewAPIKey()
	gcfg.Clients = append(gcfg.Clients, gateway.ClientConfig{ID: "other", KeySHA256: []string{otherHash}, Terminals: []string{"bau-bau-*"}})
	t.Setenv("TEKEN_TEST_OTHER_KEY", otherKey)
	r.cfg = gcfg
	r.start()
	return r
}

// start runs a gateway of the rig's configuration until stop or the
// test's end, and waits until it is ready.
func (r *rig) start() {
	t := r.t
	g, err := gateway.New(r.cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.gw = g
	r.api = "http://" + g.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		res, err := http.Get(r.api + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", res.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// call sends a request with the letter system's key and decodes the JSON
// answer into out, when given.
func (r *rig) call(method, path, key string, body io.Reader, contentType string, header map[string]string, out any) (int, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.api+path, body)
	if err != nil {
		r.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			r.t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode, raw
}

// multipartLetter is a submit request as a PHP form post makes it: the
// letter's fields as JSON, and the PDF as a file part.
func multipartLetter(t *testing.T, pdf []byte, number string) (*bytes.Buffer, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	meta := map[string]any{
		"terminal": terminalID,
		"signer":   map[string]string{"nip": "198703152010012003"},
		"title":    "Undangan Rapat Koordinasi", "number": number, "sender": "Sekretariat Daerah",
		"documents": []map[string]any{{"id": "surat", "file": "surat", "format": "pades",
			"visible": map[string]any{"page": 1, "verify_url": "https://tte.example.go.id/v/" + number}}},
	}
	raw, _ := json.Marshal(meta)
	if err := mw.WriteField("letter", string(raw)); err != nil {
		t.Fatal(err)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="surat"; filename="undangan.pdf"`)
	h.Set("Content-Type", "application/pdf")
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write(pdf)
	_ = mw.Close()
	return &b, mw.FormDataContentType()
}

// A letter from submission to the signed PDF: submitted by multipart
// form with an idempotency key, shown at the kiosk to the official named
// by NIP, signed there, every change delivered by signed webhook (the
// first attempts refused by the endpoint), the signed PDF downloaded.
func TestLetterThroughTheGateway(t *testing.T) {
	r := newRig(t)
	r.hooks.fail = 2
	pdf := testenv.TextPDF("Undangan rapat koordinasi, Kamis 10 Desember 2026")
	body, ct := multipartLetter(t, pdf, "005/123/SETDA/2026")
	var letter gateway.LetterView
	status, raw := r.call("POST", "/v1/letters", r.key, body, ct, map[string]string{"Idempotency-Key": "surat-123"}, &letter)
	if status != http.StatusCreated || letter.State != "queued" || letter.Signer.CertSHA256 != r.official.Hash {
		t.Fatalf("submit: %d %s", status, raw)
	}
	// The same request again is the same letter; another under the same
	// key is refused.
	body, ct = multipartLetter(t, pdf, "005/123/SETDA/2026")
	var again gateway.LetterView
	if status, raw := r.call("POST", "/v1/letters", r.key, body, ct, map[string]string{"Idempotency-Key": "surat-123"}, &again); status != http.StatusOK || again.ID != letter.ID {
		t.Fatalf("replay: %d %s", status, raw)
	}
	body, ct = multipartLetter(t, pdf, "005/124/SETDA/2026")
	if status, raw := r.call("POST", "/v1/letters", r.key, body, ct, map[string]string{"Idempotency-Key": "surat-123"}, nil); status != http.StatusConflict || !strings.Contains(string(raw), "idempotency_mismatch") {
		t.Fatalf("other request, same key: %d %s", status, raw)
	}

	waitState(t, r, letter.ID, "stored")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.official.Card.Insert(ctx, r.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k := tekentest.OpenKiosk(t, r.kioskURL)
	k.Await("the letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 1 && v.Jobs[0].ID == letter.ID })
	if status, answer := k.Sign([]string{letter.ID}, r.official.PIN); status != http.StatusOK {
		t.Fatalf("sign at the kiosk: %d %v", status, answer)
	}
	waitState(t, r, letter.ID, "signed")
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		got := r.hooks.states(letter.ID)
		if journey(got) != "queued,stored,signed" {
			return fmt.Errorf("webhooks %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(r.hooks.bad) > 0 {
		t.Fatalf("bad deliveries: %v", r.hooks.bad)
	}

	var signed gateway.LetterView
	r.call("GET", "/v1/letters/"+letter.ID, r.key, nil, "", nil, &signed)
	if len(signed.Documents) != 1 || signed.Documents[0].Signed == "" {
		t.Fatalf("signed letter %+v", signed)
	}
	status, out := r.call("GET", signed.Documents[0].Signed, r.key, nil, "", nil, nil)
	if status != http.StatusOK || !bytes.HasPrefix(out, []byte("%PDF-")) || !bytes.Contains(out, []byte("/ByteRange")) || len(out) <= len(pdf) {
		t.Fatalf("signed PDF: %d, %d bytes", status, len(out))
	}
	// The gateway's validation report: the signature, the chain to the
	// officials' CA, the level.
	var report struct {
		Status     string `json:"status"`
		Signatures []struct {
			Status string `json:"status"`
			NIP    string `json:"nip"`
			Level  string `json:"level"`
		} `json:"signatures"`
	}
	if status, raw := r.call("GET", "/v1/letters/"+letter.ID+"/documents/surat/report", r.key, nil, "", nil, &report); status != http.StatusOK ||
		report.Status != "VALID" || len(report.Signatures) != 1 || report.Signatures[0].NIP != "198703152010012003" || report.Signatures[0].Level != "B-B" {
		t.Fatalf("validation report: %d %s", status, raw)
	}
	var log struct {
		Deliveries []gateway.DeliveryView `json:"deliveries"`
	}
	r.call("GET", "/v1/letters/"+letter.ID+"/deliveries", r.key, nil, "", nil, &log)
	retried := false
	for _, d := range log.Deliveries {
		if !d.Delivered {
			t.Errorf("delivery %+v not delivered", d)
		}
		retried = retried || d.Attempts > 1
	}
	if n := len(log.Deliveries); n < 3 || n > 4 || !retried {
		t.Errorf("delivery log %+v", log.Deliveries)
	}
	var feed struct {
		Events []gateway.EventView `json:"events"`
		Next   uint64              `json:"next"`
	}
	r.call("GET", "/v1/events?after=0", r.key, nil, "", nil, &feed)
	if n := len(feed.Events); n < 3 || n > 4 || feed.Events[n-1].State != "signed" || feed.Next != feed.Events[n-1].Seq {
		t.Fatalf("feed %+v", feed)
	}
	// Another client sees no such letter.
	if status, _ := r.call("GET", "/v1/letters/"+letter.ID, os.Getenv("TEKEN_TEST_OTHER_KEY"), nil, "", nil, nil); status != http.StatusNotFound {
		t.Fatalf("another client's letter: %d", status)
	}
}

func waitState(t *testing.T, r *rig, id, state string) {
	t.Helper()
	if err := testenv.WaitFor(context.Background(), 2*time.Minute, func() error {
		var l gateway.LetterView
		if status, raw := r.call("GET", "/v1/letters/"+id, r.key, nil, "", nil, &l); status != http.StatusOK {
			return fmt.Errorf("get: %d %s", status, raw)
		}
		if string(l.State) != state {
			return fmt.Errorf("letter %s is %s, want %s", id, l.State, state)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Bad input gets a JSON error with a code and both languages, never a
// 500.
func TestErrorsAreJSONInBothLanguages(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name, method, path, key, ct, body string
		status                            int
		code                              string
	}{
		{"no key", "GET", "/v1/letters", "", "", "", 401, "unauthorized"},
		{"wrong key", "GET", "/v1/letters", "tk_nope", "", "", 401, "unauthorized"},
		{"not JSON", "POST", "/v1/letters", r.key, "application/json", "{", 400, "malformed"},
		{"unknown field", "POST", "/v1/letters", r.key, "application/json", `{"terminal":"kendari-setda-01","tittle":"x"}`, 400, "malformed"},
		{"form of another type", "POST", "/v1/letters", r.key, "text/plain", "x", 415, "unsupported_media_type"},
		{"terminal not allowed", "POST", "/v1/letters", r.key, "application/json",
			`{"terminal":"bau-bau-01","signer":{"nip":"198703152010012003"},"title":"t","number":"n","sender":"s","documents":[{"id":"a","content":"eA=="}]}`, 403, "forbidden_terminal"},
		{"unknown NIP", "POST", "/v1/letters", r.key, "application/json",
			`{"terminal":"kendari-setda-01","signer":{"nip":"1"},"title":"t","number":"n","sender":"s","documents":[{"id":"a","content":"eA=="}]}`, 422, "unknown_signer"},
		{"no documents", "POST", "/v1/letters", r.key, "application/json",
			`{"terminal":"kendari-setda-01","signer":{"nip":"198703152010012003"},"title":"t","number":"n","sender":"s","documents":[]}`, 400, "malformed"},
		{"unknown letter", "GET", "/v1/letters/0190a8e2-5b7c-7000-8000-000000000000", r.key, "", "", 404, "not_found"},
		{"not a letter id", "GET", "/v1/letters/..%2f..", r.key, "", "", 404, "not_found"},
		{"bad state", "GET", "/v1/letters?state=lost", r.key, "", "", 400, "malformed"},
		{"bad limit", "GET", "/v1/letters?limit=0", r.key, "", "", 400, "malformed"},
		{"bad wait", "GET", "/v1/events?wait=600", r.key, "", "", 400, "malformed"},
		{"no route", "GET", "/v2/letters", r.key, "", "", 404, "no_route"},
		{"wrong method", "DELETE", "/v1/letters", r.key, "", "", 405, "method_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			var out struct {
				Error struct {
					Code    string            `json:"code"`
					Message map[string]string `json:"message"`
				} `json:"error"`
			}
			status, raw := r.call(c.method, c.path, c.key, body, c.ct, nil, &out)
			if status != c.status || out.Error.Code != c.code || out.Error.Message["en"] == "" || out.Error.Message["id"] == "" ||
				out.Error.Message["en"] == out.Error.Message["id"] {
				t.Fatalf("%d %s; want %d %s with English and Indonesian text", status, raw, c.status, c.code)
			}
		})
	}
}

// A gateway whose broker session is new (another client id, or a broker
// that lost its state) asks the terminals with letters on their way for
// what they hold: the terminal sends the letter's receipt again.
func TestSyncRequestedOnANewSession(t *testing.T) {
	r := newRig(t)
	body := `{"terminal":"kendari-setda-01","signer":{"nip":"198703152010012003"},"title":"Surat","number":"800/1/2026","sender":"Setda","documents":[{"id":"surat","media_type":"text/plain","content":"aXNpIHN1cmF0"}]}`
	var l gateway.LetterView
	if status, raw := r.call("POST", "/v1/letters", r.key, strings.NewReader(body), "application/json", nil, &l); status != http.StatusCreated {
		t.Fatalf("submit: %d %s", status, raw)
	}
	waitState(t, r, l.ID, "stored")
	r.stop()
	r.cfg.Broker.ClientID = "gateway-test-new-session"
	r.start()
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		var got gateway.LetterView
		r.call("GET", "/v1/letters/"+l.ID, r.key, nil, "", nil, &got)
		if len(got.Receipts) < 2 {
			return fmt.Errorf("%d receipts", len(got.Receipts))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// journey is a letter's states in order without "sent": a letter whose
// terminal answered before the gateway recorded the publication goes
// from queued straight to stored.
func journey(states []string) string {
	return strings.Join(slices.DeleteFunc(slices.Clone(states), func(s string) bool { return s == "sent" }), ",")
}

// A letter that needs the Job of v 2 (here a jabatan) goes to a terminal
// whose status lists version 2 as a job of v 2, and the terminal stores
// it (buildJob's refusal for a terminal of v 1 only: TestVersion2NeedsATerminalThatTakesIt).
func TestLetterOfVersion2(t *testing.T) {
	r := newRig(t)
	body := `{"terminal":"kendari-setda-01","signer":{"nip":"198703152010012003","jabatan":"Sekretaris Daerah"},"title":"Surat","number":"800/2/2026","sender":"Setda","documents":[{"id":"surat","media_type":"text/plain","content":"aXNpIHN1cmF0"}]}`
	var l gateway.LetterView
	if status, raw := r.call("POST", "/v1/letters", r.key, strings.NewReader(body), "application/json", nil, &l); status != http.StatusCreated || l.Signer.Jabatan != "Sekretaris Daerah" {
		t.Fatalf("submit: %d %s", status, raw)
	}
	waitState(t, r, l.ID, "stored")
}

// fileWriter writes test files into dir and returns their paths.
func fileWriter(t *testing.T, dir string) func(name string, b []byte) string {
	return func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// startTerminal makes a dispatcher key in dir and runs tekend in this
// process, trusting that key and the officials of ca, on the broker at
// brokerURL, configured by adjust; it returns the kiosk's URL and the
// private key's file, for the gateway.
func startTerminal(t *testing.T, dir, brokerURL string, ca *tekentest.SignerCA, adjust ...func(*daemon.Config)) (kioskURL, keyFile string) {
	t.Helper()
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := api.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	write := fileWriter(t, dir)
	cfg := daemon.DefaultConfig()
	cfg.TerminalID, cfg.DataDir = terminalID, filepath.Join(dir, "data")
	cfg.Broker.URLs = []string{brokerURL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{write("dispatcher.pub", pub)}
	cfg.Kiosk.Listen, cfg.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Status.MinInterval = daemon.Duration(time.Second)
	cfg.Token.RefuseDefaultPIN = false
	cfg.Signing.SignerCAFiles = []string{ca.PEMPath}
	for _, f := range adjust {
		f(&cfg)
	}
	kioskURL, _, _ = tekentest.RunTekend(t, cfg, &tekentest.SyncBuffer{})
	return kioskURL, write("dispatcher.key", priv)
}
