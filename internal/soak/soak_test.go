package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// TestSoak runs a live flow for $TEKEN_SOAK (make soak) while tekend,
// Mosquitto and pcscd are killed at random, the broker is frozen and the
// terminal's disk fills up, then checks that every job dispatched has
// exactly one outcome at the central side.
func TestSoak(t *testing.T) {
	span, err := time.ParseDuration(os.Getenv("TEKEN_SOAK"))
	if err != nil || span <= 0 {
		t.Skip("set TEKEN_SOAK to a duration (make soak) to run")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the soak test needs root (pcscd sandbox, tmpfs)")
	}
	s := newRig(t)
	t.Logf("soak for %s: tekend %s, data on a %d MiB tmpfs", span, s.tekendBin, tmpfsMiB)

	ctx, stop := context.WithTimeout(context.Background(), span)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { s.dispatchLoop(ctx) })
	wg.Go(func() { s.officialLoop(ctx) })
	s.chaosLoop(ctx)
	wg.Wait()

	s.heal()
	sent := s.sentIDs()
	t.Logf("%d jobs dispatched; %d chaos events: %v", len(sent), s.events.total(), s.events.counts())
	// Every job ends by its expiry at the latest; the terminal then sends
	// the result again until it is acknowledged.
	deadline := time.Now().Add(s.maxExpiry + 3*time.Minute)
	for {
		missing := s.withoutOutcome(sent)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs never got an outcome, e.g. %v\ntekend log:\n%s", len(missing), len(sent), missing[:min(5, len(missing))], tail(s.logPath))
		}
		time.Sleep(time.Second) // the central side's own pace; no event to wait on
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byOutcome := map[api.Outcome]int{}
	for _, id := range sent {
		if len(s.outcomes[id]) != 1 {
			t.Errorf("job %s ended %d ways: %v", id, len(s.outcomes[id]), s.outcomes[id])
		}
		for o := range s.outcomes[id] {
			byOutcome[o]++
		}
	}
	t.Logf("outcomes: %v", byOutcome)
}

const (
	terminalID = "soak-setda-01"
	tmpfsMiB   = 48
)

type rig struct {
	t         *testing.T
	pcscd     *testenv.PCSCD
	broker    *testenv.Mosquitto
	official  *tekentest.Official
	central   *transport.Dispatcher
	dataDir   string
	confPath  string
	tekendBin string
	logPath   string
	kioskURL  string
	maxExpiry time.Duration
	events    eventCount

	mu       sync.Mutex
	tekend   *exec.Cmd
	waited   <-chan error
	sent     []string
	outcomes map[string]map[api.Outcome]int
}

func newRig(t *testing.T) *rig {
	dir := t.TempDir()
	s := &rig{t: t, maxExpiry: 90 * time.Second, outcomes: map[string]map[api.Outcome]int{}}
	s.pcscd = testenv.StartPCSCD(t)
	s.broker = testenv.StartMosquitto(t)
	s.dataDir = filepath.Join(dir, "data")
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", tmpfsMiB), "tmpfs", s.dataDir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", s.dataDir).Run() })

	s.tekendBin = filepath.Join(dir, "tekend")
	if out, err := exec.Command("go", "build", "-o", s.tekendBin, "../../cmd/tekend").CombinedOutput(); err != nil {
		t.Fatalf("build tekend: %v\n%s", err, out)
	}
	key, err := api.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	pubPath := filepath.Join(dir, "dispatcher.pub")
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := tekentest.NewSignerCA(t)
	s.official = ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7001)

	kioskPort, metricsPort := testenv.FreePort(t), testenv.FreePort(t)
	s.kioskURL = fmt.Sprintf("http://127.0.0.1:%d", kioskPort)
	s.confPath = filepath.Join(dir, "tekend.toml")
	conf := tekendConfig(terminalID, s.dataDir, "debug", s.broker.URL, pubPath, kioskPort, metricsPort, fmt.Sprintf(`
[signing]
signer_ca_files = [%q]
shutdown_grace = "2s"

[status]
min_interval = "1s"
`, ca.PEMPath))
	if err := os.WriteFile(s.confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.logPath = filepath.Join(dir, "tekend.log")
	s.startTekend()
	t.Cleanup(s.killTekend)

	s.central, err = transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{s.broker.URL}, ClientID: "soak-central",
			MaxReconnectInterval: time.Second, Logger: slog.New(slog.DiscardHandler)},
		Signer: signer,
		OnResult: func(_ context.Context, r *api.Result) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.outcomes[r.JobID] == nil {
				s.outcomes[r.JobID] = map[api.Outcome]int{}
			}
			s.outcomes[r.JobID][r.Outcome]++
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.central.Close(context.Background()) })
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.central.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// startTekend runs tekend as its own process, so it can be SIGKILLed.
func (s *rig) startTekend() {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(s.tekendBin, "-config", s.confPath)
	cmd.Env = append(os.Environ(), sandbox.SocketEnv+"="+s.pcscd.Socket)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	waited, err := sandbox.StartHeld(cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.tekend, s.waited = cmd, waited
	s.mu.Unlock()
}

func (s *rig) killTekend() {
	s.mu.Lock()
	cmd, waited := s.tekend, s.waited
	s.tekend = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-waited
	}
}

// dispatchLoop sends a letter every second or so, each expiring within
// maxExpiry, so every one ends even if nobody signs it.
func (s *rig) dispatchLoop(ctx context.Context) {
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(500+rand.IntN(1000)) * time.Millisecond):
		}
		now := time.Now().UTC().Truncate(time.Second)
		j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: terminalID, IssuedAt: now,
			ExpiresAt: now.Add(time.Duration(20+rand.IntN(int(s.maxExpiry/time.Second)-20)) * time.Second),
			Signer:    api.Signatory{CertSHA256: s.official.Hash, Name: s.official.Name},
			Title:     fmt.Sprintf("Surat uji %d", n), Number: fmt.Sprintf("800/%d/2026", n), Sender: "Setda",
			Documents: []api.Document{api.NewDocument("surat", "surat.txt", "text/plain", []byte(fmt.Sprintf("isi surat %d", n)))}}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		// On error the job stays pending at the central side; the
		// terminal's next Sync brings it out again.
		_ = s.central.Publish(pctx, j)
		cancel()
		s.mu.Lock()
		s.sent = append(s.sent, j.JobID)
		s.mu.Unlock()
	}
}

// officialLoop keeps the token on the reader and now and then signs or
// rejects a letter the page shows, as an official would, through the
// kiosk's own API.
func (s *rig) officialLoop(ctx context.Context) {
	var k kioskClient
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(1000+rand.IntN(2000)) * time.Millisecond):
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = s.official.Card.Insert(ictx, s.pcscd.VPCDAddr(0)) // already in, or back after pcscd came back
		cancel()
		if !k.ok() && k.open(s.kioskURL) != nil {
			continue // tekend is down
		}
		id := s.randomSent()
		if id == "" {
			continue
		}
		var status int
		if rand.IntN(3) == 0 {
			status = k.post("/api/reject", map[string]any{"job_id": id, "reason": "soak"})
		} else if status = k.get("/api/documents/" + id + "/0"); status == http.StatusOK {
			// The official opened the letter's one document, as tekend
			// wants before it signs.
			status = k.post("/api/sign", map[string]any{"job_ids": []string{id}, "pin": s.official.PIN})
		}
		if status == 0 || status == http.StatusForbidden {
			k = kioskClient{} // tekend restarted: a new page, a new token
		}
	}
}

// chaosLoop strikes every few seconds until ctx ends.
func (s *rig) chaosLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(3+rand.IntN(5)) * time.Second):
		}
		switch rand.IntN(5) {
		case 0:
			s.events.add("kill tekend")
			s.killTekend()
			s.startTekend()
		case 1:
			s.events.add("kill pcscd")
			s.pcscd.Kill()
			pause(ctx, 2*time.Second)
			if err := s.pcscd.Restart(); err != nil {
				s.t.Errorf("restart pcscd: %v", err)
			}
		case 2:
			s.events.add("restart broker")
			if err := s.broker.Restart(); err != nil {
				s.t.Errorf("restart broker: %v", err)
			}
		case 3:
			s.events.add("freeze broker")
			if err := s.broker.Freeze(); err == nil {
				pause(ctx, 8*time.Second)
				_ = s.broker.Thaw()
			}
		case 4:
			s.events.add("fill disk")
			s.fillDisk(ctx, 8*time.Second)
		}
	}
}

// fillDisk fills the terminal's filesystem, holds it full, then frees it.
func (s *rig) fillDisk(ctx context.Context, hold time.Duration) {
	filler := filepath.Join(s.dataDir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		return
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	pause(ctx, hold)
	_ = os.Remove(filler)
}

// heal brings every part back for the final count.
func (s *rig) heal() {
	_ = s.broker.Thaw()
	_ = os.Remove(filepath.Join(s.dataDir, "filler"))
	s.mu.Lock()
	running := s.tekend != nil
	s.mu.Unlock()
	if !running {
		s.startTekend()
	}
}

func (s *rig) sentIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

func (s *rig) randomSent() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		return ""
	}
	return s.sent[rand.IntN(len(s.sent))]
}

func (s *rig) withoutOutcome(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range ids {
		if len(s.outcomes[id]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// pause waits d or until ctx ends: chaos keeps its own rhythm.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kioskClient speaks to the kiosk's API as the page does.
type kioskClient struct{ base, csrf string }

func (k *kioskClient) ok() bool { return k.csrf != "" }

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)

func (k *kioskClient) open(base string) error {
	res, err := http.Get(base + "/")
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfMeta.FindSubmatch(page)
	if m == nil {
		return errors.New("no CSRF token in the page")
	}
	k.base, k.csrf = base, string(m[1])
	return nil
}

// post returns the status, 0 when tekend did not answer.
func (k *kioskClient) post(path string, body any) int {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, k.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", k.base)
	req.Header.Set("X-Teken-CSRF", k.csrf)
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// get fetches as the page does and returns the status, 0 when tekend did
// not answer.
func (k *kioskClient) get(path string) int {
	req, _ := http.NewRequest(http.MethodGet, k.base+path, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

type eventCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *eventCount) add(what string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[what]++
}

func (e *eventCount) counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.n {
		out[k] = v
	}
	return out
}

func (e *eventCount) total() int {
	n := 0
	for _, v := range e.counts() {
		n += v
	}
	return n
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	return string(b)
}
