package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// doctorRig is an enrolled terminal: a private pcscd with an official's
// token in its reader, a Mosquitto that wants TLS with a client
// certificate and a password, a TSA, and tekend running with all of it.
type doctorRig struct {
	t          *testing.T
	dir        string
	pcscd      *testenv.PCSCD
	broker     *testenv.Mosquitto
	official   *tekentest.Official
	cfg        daemon.Config
	socket     string // tekend's admin socket
	metricsURL string
	stopTekend func()
}

func newDoctorRig(t *testing.T) *doctorRig {
	t.Helper()
	r := &doctorRig{t: t, dir: t.TempDir()}
	r.pcscd = testenv.StartPCSCD(t)
	const user, password = "sultra-test-01", "kata-sandi-terminal"
	passwd := testenv.LookPath(t, "mosquitto_passwd")
	pwFile := filepath.Join(r.dir, "mosquitto.passwd")
	if out, err := exec.Command(passwd, "-c", "-b", pwFile, user, password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	r.broker = testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true,
		Extra: []string{"allow_anonymous false", "password_file " + pwFile}})
	tsa := testenv.StartTSA(t, testenv.TSAConfig{})
	ca := tekentest.NewSignerCA(t)
	r.official = ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7001, func(c *x509.Certificate) {
		c.NotAfter = time.Now().Add(365 * 24 * time.Hour) // not due for renewal
	})
	if err := r.official.Card.Insert(context.Background(), r.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	awaitTokens(t, 1)

	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	cfg := daemon.DefaultConfig()
	cfg.TerminalID = "sultra-test-01"
	cfg.DataDir = filepath.Join(r.dir, "data")
	cfg.Broker.URLs = []string{r.broker.URL}
	cfg.Broker.CAFile = r.broker.CA.CertFile
	// The harness leaves the client key readable by all, for the broker;
	// the terminal's copy is closed, as INSTALL.md installs it.
	cfg.Broker.CertFile, cfg.Broker.KeyFile = r.broker.Client.CertFile, r.file("terminal-key.pem", readFile(t, r.broker.Client.KeyFile))
	cfg.Broker.Username, cfg.Broker.PasswordFile = user, r.file("broker-password", password+"\n")
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{r.file("dispatcher.pub", string(pub))}
	cfg.Signing.SignerCAFiles = []string{ca.PEMPath}
	cfg.Signing.TSAURL = tsa.URL
	cfg.Store.MaxSizeBytes = 32 << 20
	// Fixed ports, known to the doctor through the file.
	cfg.Kiosk.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.Metrics.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	r.cfg = cfg
	r.socket = filepath.Join(r.dir, "tekend.sock")
	r.runTekend()
	return r
}

// runTekend runs tekend in the test process, with its admin socket (which
// tekentest.RunTekend does not open), until stopTekend or the test's end.
func (r *doctorRig) runTekend() {
	t := r.t
	t.Helper()
	logs := &tekentest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, r.cfg, daemon.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)),
			AdminSocket: r.socket, Ready: func(_, metrics string) { ready <- metrics }})
	}()
	select {
	case addr := <-ready:
		r.metricsURL = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("tekend exited: %v\n%s", err, logs.Bytes())
	}
	var once sync.Once
	r.stopTekend = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("tekend: %v\n%s", err, logs.Bytes())
			}
		})
	}
	t.Cleanup(r.stopTekend)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// file writes a file of the terminal's, 0600, and returns its path.
func (r *doctorRig) file(name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// config writes the terminal's configuration, changed by adjust, and
// returns its path.
func (r *doctorRig) config(adjust func(*daemon.Config)) string {
	r.t.Helper()
	cfg := r.cfg
	if adjust != nil {
		adjust(&cfg)
	}
	p := filepath.Join(r.t.TempDir(), "tekend.toml")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o640)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cfg.WriteTOML(f); err != nil {
		r.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// doctor runs tekenctl doctor on the configuration at path.
func (r *doctorRig) doctor(path string) doctorRun {
	r.t.Helper()
	c := tekenctl(r.t, context.Background(), nil, "doctor", "--config", path, "--user", "root", "--timeout", "5s",
		"--socket", r.socket)
	run := doctorRun{code: c.code, lines: map[string][]string{}}
	sc := bufio.NewScanner(strings.NewReader(c.stdout))
	for sc.Scan() {
		health, rest, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			r.t.Fatalf("line %q is not `health  what: detail`", sc.Text())
		}
		run.lines[strings.TrimSpace(health)] = append(run.lines[strings.TrimSpace(health)], strings.TrimSpace(rest))
	}
	return run
}

// doctorRun is one run's lines by health.
type doctorRun struct {
	code  int
	lines map[string][]string
}

// has reports whether a line of health h starts with what and holds all of
// details.
func (d doctorRun) has(h, what string, details ...string) bool {
next:
	for _, l := range d.lines[h] {
		if !strings.HasPrefix(l, what+": ") {
			continue
		}
		for _, s := range details {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return true
	}
	return false
}

func (d doctorRun) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit %d\n", d.code)
	for _, h := range []string{"ok", "warn", "fail"} {
		for _, l := range d.lines[h] {
			fmt.Fprintf(&b, "%-4s  %s\n", h, l)
		}
	}
	return b.String()
}

// expect fails the test unless the run exited with code and has every
// line of want, {health, what, details...}.
func (d doctorRun) expect(t *testing.T, code int, want ...[]string) {
	t.Helper()
	if d.code != code {
		t.Errorf("exit %d, want %d", d.code, code)
	}
	for _, w := range want {
		if !d.has(w[0], w[1], w[2:]...) {
			t.Errorf("no %s line for %q with %q", w[0], w[1], w[2:])
		}
	}
	if t.Failed() {
		t.Logf("doctor said:\n%s", d)
	}
}

// TestDoctor runs tekenctl doctor on a configured terminal, then breaks one
// part after another.
func TestDoctor(t *testing.T) {
	r := newDoctorRig(t)
	reader := r.pcscd.Readers[0]
	good := r.config(nil)

	t.Run("all ok", func(t *testing.T) {
		d := r.doctor(good)
		d.expect(t, exitOK,
			[]string{"ok", "configuration", good + " passes tekend check-config --strict"},
			[]string{"ok", "files", "7 files the configuration names"},
			[]string{"ok", "data_dir " + r.cfg.DataDir, "0700 root:root"},
			[]string{"ok", "disk " + r.cfg.DataDir, "free; the store is"},
			[]string{"ok", "pcscd", "answers at "},
			[]string{"ok", "readers", reader},
			[]string{"ok", "token in " + reader, "Siti Rahmawati (NIP 198703152010012003), serial 7001", "chains to signing.signer_ca_files", "3 PIN tries left"},
			[]string{"ok", "broker " + r.broker.URL, "TLS pinned to " + r.cfg.Broker.CAFile, "client certificate", "user sultra-test-01", "client id teken-sultra-test-01-doctor"},
			[]string{"ok", "clock", "the TSA's (HTTP Date of 127.0.0.1:"},
			// tekend holds the store: checked on a hot backup.
			[]string{"ok", "store " + daemon.StorePath(r.cfg.DataDir) + " (hot backup)", "audit chain of", "entries intact"},
			[]string{"ok", "tekend", "running and ready"},
		)
		if n := len(d.lines["warn"]) + len(d.lines["fail"]); n != 0 {
			t.Errorf("%d lines not ok:\n%s", n, d)
		}
		// The doctor's connect took nothing from tekend: its one session
		// is still the first, and it is still ready.
		if n := scrape(t, r.metricsURL, "teken_broker_connects_total"); n != "1" {
			t.Errorf("teken_broker_connects_total = %s after the doctor, want 1", n)
		}
		if code, body := get(t, r.metricsURL+"/readyz"); code != http.StatusOK {
			t.Errorf("/readyz after the doctor: %d %s", code, body)
		}
	})

	unreachable := fmt.Sprintf("ssl://127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name   string
		adjust func(*daemon.Config)
		want   [][]string
	}{
		{"broker unreachable", func(c *daemon.Config) { c.Broker.URLs = []string{unreachable} },
			[][]string{{"fail", "broker " + unreachable, "connection refused", "nothing listens there"}}},
		{"wrong broker password", func(c *daemon.Config) { c.Broker.PasswordFile = r.file("wrong-password", "tebakan\n") },
			[][]string{{"fail", "broker " + r.broker.URL, "broker.password_file"}}},
		{"TLS CA mismatch", func(c *daemon.Config) { c.Broker.CAFile = testenv.NewCA(t, "another CA").CertFile },
			[][]string{{"fail", "broker " + r.broker.URL, "certificate signed by unknown authority", "not from the CA in broker.ca_file"}}},
		{"a missing file", func(c *daemon.Config) { c.Signing.SignerCAFiles = []string{filepath.Join(r.dir, "provinsi-ca.pem")} },
			[][]string{{"fail", "configuration", "signing.signer_ca_files: open " + filepath.Join(r.dir, "provinsi-ca.pem") + ": no such file or directory"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.doctor(r.config(tc.adjust)).expect(t, exitFailure, tc.want...)
		})
	}

	t.Run("bad data_dir mode", func(t *testing.T) {
		if err := os.Chmod(r.cfg.DataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(r.cfg.DataDir, 0o700)
		r.doctor(good).expect(t, exitFailure,
			[]string{"fail", "data_dir " + r.cfg.DataDir, "has mode 0755, want 0700", "sudo chmod 0700 " + r.cfg.DataDir})
	})

	t.Run("no token in the reader", func(t *testing.T) {
		if err := r.official.Card.Remove(); err != nil {
			t.Fatal(err)
		}
		awaitTokens(t, 0)
		d := r.doctor(good)
		d.expect(t, exitOK, []string{"warn", "token", "none in any reader"}, []string{"ok", "readers", reader})
	})

	t.Run("tekend not running", func(t *testing.T) {
		r.stopTekend()
		r.doctor(good).expect(t, exitFailure,
			[]string{"fail", "tekend", "not running: nothing answers on " + r.cfg.Metrics.Listen},
			// Stopped, it no longer holds the store: checked read-only.
			[]string{"ok", "store " + daemon.StorePath(r.cfg.DataDir), "audit chain of", "entries intact"})
	})

	t.Run("pcscd not running", func(t *testing.T) {
		if os.Geteuid() != 0 {
			testenv.Unavailable(t, "the system pcscd cannot be stopped from a test")
		}
		r.pcscd.Stop()
		r.doctor(good).expect(t, exitFailure, []string{"fail", "pcscd", "not reachable at ", "sudo systemctl start pcscd.socket"})
	})
}

// awaitTokens waits until pcscd sees n tokens: vpcd is polled, so an
// insertion or a removal takes a moment to show.
func awaitTokens(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	toks, err := device.Open(ctx, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer toks.Close(ctx)
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		present, err := toks.Present(ctx)
		if err == nil && len(present) != n {
			err = fmt.Errorf("tokens in %q, want %d", present, n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// scrape reads one unlabelled sample from /metrics.
func scrape(t *testing.T, base, name string) string {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestDoctorUsage(t *testing.T) {
	for _, args := range [][]string{{"doctor", "now"}, {"doctor", "--timeout", "0s"}, {"doctor", "--bogus"}} {
		if c := tekenctl(t, context.Background(), nil, args...); c.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, c.code, exitUsage)
		}
	}
}
