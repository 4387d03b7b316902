package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/pgstore"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// BenchmarkGateway measures letters through the gateway with each store:
//
//	go test -run '^$' -bench BenchmarkGateway -benchtime 1x ./gateway/
//
// A real Mosquitto, the gateway in this process, a terminal that stores
// every job it is sent (the terminal side of the transport, no card), and
// a webhook endpoint that counts. submit_letters/s: letters submitted by
// 16 concurrent clients (JSON, one small document each), until the last
// 201; stored_letters/s: from the first submission until the webhook has
// the stored event of every letter (published, taken by the terminal,
// its receipt stored); results/s: the terminal publishes a result for
// every letter (32 at a time, as tekend's outbox does), until the webhook
// has each letter's final event: stored and acknowledged on the way.
// TEKEN_GATEWAY_LETTERS sets the number of letters (default 2,000).
func BenchmarkGateway(b *testing.B) {
	n := 2000
	if s := os.Getenv("TEKEN_GATEWAY_LETTERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("TEKEN_GATEWAY_LETTERS=%q: want a positive number", s)
		}
		n = v
	}
	for _, kind := range []string{"bolt", "postgres"} {
		b.Run("store="+kind, func(b *testing.B) {
			for range b.N {
				f := runGatewayBench(b, kind, n)
				b.ReportMetric(float64(n)/f.submit.Seconds(), "submit_letters/s")
				b.ReportMetric(float64(n)/f.stored.Seconds(), "stored_letters/s")
				b.ReportMetric(float64(n)/f.results.Seconds(), "results/s")
			}
		})
	}
}

type gatewayFigures struct{ submit, stored, results time.Duration }

// countingSink counts the webhook events by state.
type countingSink struct {
	mu     sync.Mutex
	states map[string]map[string]bool // state → letter ids
}

func (c *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := string(body)
	// The body's letter id and state, without a full decode: the
	// endpoint's own cost stays out of the figures.
	id := between(s, `"letter":{"id":"`, `"`)
	state := between(s, `"state":"`, `"`)
	c.mu.Lock()
	if c.states[state] == nil {
		c.states[state] = map[string]bool{}
	}
	c.states[state][id] = true
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

func (c *countingSink) count(state string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states[state])
}

func runGatewayBench(b *testing.B, kind string, n int) gatewayFigures {
	dir := b.TempDir()
	broker := testenv.StartMosquitto(b)
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := api.MarshalPrivateKeyPEM(key)
	keyFile := filepath.Join(dir, "dispatcher.key")
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte("a webhook secret for the benchmark"), 0o600); err != nil {
		b.Fatal(err)
	}
	sink := &countingSink{states: map[string]map[string]bool{}}
	hooks := httptest.NewServer(sink)
	b.Cleanup(hooks.Close)
	apiKey, hash := gateway.NewAPIKey()
	cfg := gateway.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Store.Path = filepath.Join(dir, "gateway.db")
	cfg.Broker.URLs, cfg.Broker.ClientID = []string{broker.URL}, "gateway-bench"
	cfg.DispatcherKeyFile = keyFile
	cfg.Clients = []gateway.ClientConfig{{ID: "bench", KeySHA256: []string{hash}, Terminals: []string{"*"},
		Webhooks: []gateway.EndpointConfig{{Name: "main", URL: hooks.URL, SecretFile: secretFile}}}}
	var st store.Store
	if kind == "postgres" {
		pg := testenv.StartPostgres(b)
		cfg.Store.Kind, cfg.Store.DSN = "postgres", pg.DSN
		if st, err = pgstore.Open(context.Background(), pg.DSN, pgstore.Options{Hooks: cfg.Hooks()}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})

	keys, err := api.KeySet(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	term := &benchTerminal{v: &api.Verifier{Keys: keys, Terminal: terminalID}}
	tt, err := transport.OpenTerminal(transport.TerminalConfig{
		Connection: transport.Connection{Brokers: []string{broker.URL}, ClientID: "teken-" + terminalID, Logger: slog.New(slog.DiscardHandler)},
		TerminalID: terminalID, Handler: term, JobWorkers: 32,
		Status: func() api.Status { return api.Status{Version: "bench"} },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tt.Close(context.Background()) })
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if !tt.Connected() {
			return fmt.Errorf("the terminal is not connected")
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	base := "http://" + g.Addr()
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", res.StatusCode)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}

	var f gatewayFigures
	start := time.Now()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := fmt.Sprintf(`{"terminal":%q,"signer":{"cert_sha256":"%064x"},"title":"Surat %d","number":"800/%d/2026","sender":"Setda","documents":[{"id":"surat","media_type":"text/plain","content":"aXNpIHN1cmF0"}]}`,
					terminalID, i+1, i, i)
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/letters", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+apiKey)
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("submit: %s %s", res.Status, raw)
					return
				}
				ids[i] = between(string(raw), `"id":"`, `"`)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	f.submit = time.Since(start)
	if err := testenv.WaitFor(context.Background(), 10*time.Minute, func() error {
		if got := sink.count("stored"); got < n {
			return fmt.Errorf("%d of %d letters stored at the terminal", got, n)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	f.stored = time.Since(start)

	start = time.Now()
	next.Store(0)
	errs = make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				res := &api.Result{V: api.Version, JobID: ids[i], Terminal: terminalID, Outcome: api.OutcomeRejected,
					Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()}
				raw, err := api.Encode(res)
				if err == nil {
					pctx, pcancel := context.WithTimeout(context.Background(), time.Minute)
					err = tt.PublishResult(pctx, res.JobID, raw)
					pcancel()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if err := testenv.WaitFor(context.Background(), 10*time.Minute, func() error {
		if got := sink.count("rejected"); got < n {
			return fmt.Errorf("%d of %d results delivered", got, n)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	f.results = time.Since(start)
	return f
}

// benchTerminal is a terminal's store: the job ids it took.
type benchTerminal struct {
	v    *api.Verifier
	mu   sync.Mutex
	jobs []string
}

func (t *benchTerminal) HandleJob(_ context.Context, raw []byte) (api.Receipt, error) {
	r := api.Receipt{EnvelopeSHA256: api.EnvelopeSHA256(raw), At: time.Now().UTC()}
	j, _, err := t.v.VerifyJob(raw)
	if err != nil {
		r.Status, r.Reason, r.Detail = api.ReceiptRefused, api.Reason(err), err.Error()
		return r, nil
	}
	r.JobID, r.Status = j.JobID, api.ReceiptStored
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Contains(t.jobs, j.JobID) {
		r.Status = api.ReceiptDuplicate
	} else {
		t.jobs = append(t.jobs, j.JobID)
	}
	return r, nil
}

func (t *benchTerminal) HandleControl(context.Context, []byte) (transport.ControlAnswer, error) {
	return transport.ControlAnswer{}, nil
}

func (t *benchTerminal) SyncState(context.Context) (api.Sync, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return api.Sync{JobsWaiting: slices.Clone(t.jobs), ResultsUndelivered: []string{}}, nil
}

func (t *benchTerminal) Connected(context.Context)                     {}
func (t *benchTerminal) Resend(context.Context) ([]api.Receipt, error) { return nil, nil }
