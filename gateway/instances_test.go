package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// instance is one tekengw process.
type instance struct {
	cmd    *exec.Cmd
	url    string
	waited chan error
	log    *tekentest.SyncBuffer
}

// Two gateway instances, as processes, share one PostgreSQL database and
// one broker (through a shared subscription on Mosquitto); letters are
// submitted to both; one is SIGKILLed while the official signs. Every
// letter ends signed with one result and one signed event, and every
// event reaches the webhook.
func TestTwoInstancesOneKilled(t *testing.T) {
	pg := testenv.StartPostgres(t)
	broker := testenv.StartMosquitto(t)
	pcscd := testenv.StartPCSCD(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tekengw")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tekengw").CombinedOutput(); err != nil {
		t.Fatalf("build tekengw: %v\n%s", err, out)
	}
	ca := tekentest.NewSignerCA(t)
	official := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7002)
	write := fileWriter(t, dir)
	kioskURL, keyFile := startTerminal(t, dir, broker.URL, ca, func(cfg *daemon.Config) {
		// A result whose acknowledgement went with the killed instance
		// goes out again soon.
		cfg.Broker.ResultResendInitial = daemon.Duration(time.Second)
		cfg.Broker.ResultResendMax = daemon.Duration(2 * time.Second)
	})

	sink := &hookSink{secret: []byte("a webhook secret of the letter system")}
	hooks := httptest.NewServer(sink)
	t.Cleanup(hooks.Close)
	apiKey, hash := gateway.NewAPIKey()
	conf := func(name string) string {
		return write(name+".toml", fmt.Appendf(nil, `
listen = "127.0.0.1:%d"
dispatcher_key_file = %q
signer_cert_files = [%q]

[store]
kind = "postgres"
dsn = %q

[broker]
urls = [%q]
client_id = "gateway-%s"
shared_group = "teken-gateway"

[webhook]
min_backoff = "200ms"
max_backoff = "1s"

[[clients]]
id = "sisumaker"
key_sha256 = [%q]
terminals = ["kendari-*"]

[[clients.webhooks]]
name = "main"
url = %q
secret_file = %q
`, testenv.FreePort(t), keyFile, write("official.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: official.Cert.Raw})),
			pg.DSN, broker.URL, name, hash, hooks.URL+"/teken", write("hook.secret", sink.secret)))
	}
	start := func(name string) *instance {
		path := conf(name)
		in := &instance{log: &tekentest.SyncBuffer{}, waited: make(chan error, 1)}
		in.cmd = exec.Command(bin, "-config", path)
		in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
		in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { in.waited <- in.cmd.Wait() }()
		t.Cleanup(func() {
			_ = in.cmd.Process.Kill()
			<-in.waited
			if t.Failed() {
				t.Logf("%s log:\n%s", name, in.log.Bytes())
			}
		})
		cfg, err := gateway.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		in.url = "http://" + cfg.Listen
		if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
			res, err := http.Get(in.url + "/readyz")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", res.StatusCode)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, in.log.Bytes())
		}
		return in
	}
	a, b := start("a"), start("b")

	r := &rig{t: t, key: apiKey}
	const letters = 12
	var ids []string
	for i := range letters {
		r.api = []string{a.url, b.url}[i%2]
		body := fmt.Sprintf(`{"terminal":%q,"signer":{"nip":"198703152010012003"},"title":"Surat %d","number":"800/%d/2026","sender":"Setda",
			"documents":[{"id":"surat","media_type":"text/plain","content":"aXNpIHN1cmF0"}]}`, terminalID, i, i)
		var l gateway.LetterView
		if status, raw := r.call("POST", "/v1/letters", apiKey, strings.NewReader(body), "application/json", nil, &l); status != http.StatusCreated {
			t.Fatalf("submit to %s: %d %s", r.api, status, raw)
		}
		ids = append(ids, l.ID)
	}
	r.api = b.url
	for _, id := range ids {
		waitState(t, r, id, "stored")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := official.Card.Insert(ctx, pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k := tekentest.OpenKiosk(t, kioskURL)
	k.Await("every letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == letters })
	signed := k.SignInBackground(ids[:letters/2], official.PIN)
	// A dies while the first half's results come in.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.waited
	a.waited <- nil // for the cleanup
	if code := <-signed; code != http.StatusOK {
		t.Fatalf("sign the first half: %d", code)
	}
	k.Await("the rest", func(v kiosk.View) bool {
		if v.State == kiosk.StateDone {
			k.Post("/api/dismiss", map[string]any{})
			return false
		}
		return v.CanSign && len(v.Jobs) == letters/2
	})
	if code, body := k.Sign(ids[letters/2:], official.PIN); code != http.StatusOK {
		t.Fatalf("sign the rest: %d %v", code, body)
	}
	for _, id := range ids {
		waitState(t, r, id, "signed")
	}
	// One signed event a letter in the feed: each result was stored once.
	var feed struct {
		Events []gateway.EventView `json:"events"`
	}
	r.call("GET", "/v1/events?after=0&limit=1000", apiKey, nil, "", nil, &feed)
	signedEvents := map[string]int{}
	for _, ev := range feed.Events {
		if ev.State == "signed" {
			signedEvents[ev.LetterID]++
		}
	}
	for _, id := range ids {
		if signedEvents[id] != 1 {
			t.Errorf("letter %s: %d signed events, want 1", id, signedEvents[id])
		}
		var res api.Result
		_, raw := r.call("GET", "/v1/letters/"+id+"/result", apiKey, nil, "", nil, nil)
		if err := json.Unmarshal(raw, &res); err != nil || res.Outcome != api.OutcomeSigned || !bytes.Equal(res.SignerCert, official.Cert.Raw) {
			t.Errorf("letter %s: result %s (%v)", id, raw, err)
		}
	}
	// Every event of every letter reached the webhook, B delivering what
	// A had leased when it died.
	if err := testenv.WaitFor(context.Background(), 2*time.Minute, func() error {
		for _, id := range ids {
			if got := journey(sink.states(id)); got != "queued,stored,signed" {
				return fmt.Errorf("letter %s: webhooks %s", id, got)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
