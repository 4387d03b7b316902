package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// ownTekend is a tekend run in the test process as cmd/tekend runs it:
// from its configuration file, reloaded on a signal channel, logging at a
// level a reload sets, with an admin socket. Its smart-card service and
// broker are the test's own.
type ownTekend struct {
	t        *testing.T
	conf     string
	cfg      daemon.Config // as last written
	socket   string
	logs     *tekentest.SyncBuffer
	level    slog.LevelVar
	reloads  chan os.Signal
	pcscd    *testenv.PCSCD
	broker   *testenv.Mosquitto
	kioskURL string
	stop     func()
}

// newOwnTekend writes the configuration of a terminal that trusts the
// dispatcher keys in keyFiles; adjust may change it.
func newOwnTekend(t *testing.T, keyFiles []string, adjust ...func(*daemon.Config)) *ownTekend {
	t.Helper()
	t.Setenv("JOURNAL_STREAM", "") // text on the test's buffer, never the journal
	dir := t.TempDir()
	o := &ownTekend{t: t, conf: filepath.Join(dir, "tekend.toml"), socket: filepath.Join(dir, "tekend.sock"),
		logs: &tekentest.SyncBuffer{}, reloads: make(chan os.Signal, 1)}
	o.pcscd = testenv.StartPCSCD(t)
	o.broker = testenv.StartMosquitto(t)
	o.cfg = daemon.DefaultConfig()
	o.cfg.TerminalID = "kendari-setda-01"
	o.cfg.DataDir = filepath.Join(dir, "data")
	o.cfg.Broker.URLs = []string{o.broker.URL}
	o.cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	o.cfg.Dispatcher.KeyFiles = keyFiles
	o.cfg.Kiosk.Listen = "127.0.0.1:0"
	o.cfg.Metrics.Listen = "127.0.0.1:0"
	o.cfg.Status.MinInterval = daemon.Duration(time.Second)
	o.cfg.Token.RefuseDefaultPIN = false // the software tokens keep the factory PIN 123456
	o.write(adjust...)
	return o
}

// write changes the configuration file (and only the file).
func (o *ownTekend) write(adjust ...func(*daemon.Config)) {
	o.t.Helper()
	for _, f := range adjust {
		f(&o.cfg)
	}
	var b bytes.Buffer
	if err := o.cfg.WriteTOML(&b); err != nil {
		o.t.Fatal(err)
	}
	if err := os.WriteFile(o.conf, b.Bytes(), 0o600); err != nil {
		o.t.Fatal(err)
	}
}

// start runs tekend with the file as it is now, until stop or the test's
// end.
func (o *ownTekend) start() {
	o.t.Helper()
	cfg, err := daemon.LoadConfig(o.conf)
	if err != nil {
		o.t.Fatal(err)
	}
	l, _ := daemon.ParseLogLevel(cfg.LogLevel)
	o.level.Set(l)
	log := daemon.NewLogger(&o.level, o.logs)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: log, LogLevel: &o.level, ConfigPath: o.conf,
			Reload: o.reloads, AdminSocket: o.socket, Ready: func(k, _ string) { ready <- k }})
	}()
	select {
	case k := <-ready:
		o.kioskURL = "http://" + k
	case err := <-done:
		cancel()
		o.t.Fatalf("tekend exited: %v\n%s", err, o.logs.Bytes())
	}
	var once sync.Once
	o.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				o.t.Errorf("tekend: %v", err)
			}
		})
	}
	o.t.Cleanup(o.stop)
	o.t.Cleanup(func() {
		if o.t.Failed() {
			o.t.Logf("tekend log:\n%s", o.logs.Bytes())
		}
	})
}

// reload sends SIGHUP, as systemctl reload does, and waits until tekend has
// reloaded or refused; it returns the log lines of the reload.
func (o *ownTekend) reload() string {
	o.t.Helper()
	before := len(o.logs.Bytes())
	o.reloads <- syscall.SIGHUP
	var lines string
	err := testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		lines = string(o.logs.Bytes()[before:])
		if !strings.Contains(lines, "configuration reloaded") && !strings.Contains(lines, "configuration not reloaded") {
			return fmt.Errorf("no reload logged yet")
		}
		return nil
	})
	if err != nil {
		o.t.Fatal(err)
	}
	return lines
}

// central is the letter system's side, with one dispatcher per key.
type central struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[string][]*api.Receipt // by job id
}

func newCentral(t *testing.T) *central { return &central{t: t, seen: map[string][]*api.Receipt{}} }

// dispatcher signs with a key of its own, whose public half it writes to
// a file, and publishes to the broker at url.
func (c *central) dispatcher(url, name string, extra ...func(*transport.DispatcherConfig)) (*transport.Dispatcher, string) {
	c.t.Helper()
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		c.t.Fatal(err)
	}
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	file := filepath.Join(c.t.TempDir(), name+".pub")
	if err := os.WriteFile(file, pub, 0o644); err != nil {
		c.t.Fatal(err)
	}
	signer, err := api.NewSigner(key)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{url}, ClientID: "central-" + name, MaxReconnectInterval: time.Second,
			Logger: slog.New(slog.DiscardHandler)},
		Signer: signer,
		OnReceipt: func(_ context.Context, r *api.Receipt) {
			c.mu.Lock()
			c.seen[r.JobID] = append(c.seen[r.JobID], r)
			c.mu.Unlock()
		},
	}
	for _, f := range extra {
		f(&cfg)
	}
	d, err := transport.OpenDispatcher(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.WaitConnected(ctx); err != nil {
		c.t.Fatal(err)
	}
	return d, file
}

// letter is a job for the official whose certificate hash is signer.
func letter(signer, title string) *api.Job {
	now := time.Now().UTC().Truncate(time.Second)
	body := demo.LetterPDF("Dinas Komunikasi dan Informatika", "800/"+title, title, "Dengan hormat.")
	return &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: signer, Name: "Siti Rahmawati"}, Title: title, Number: "800/" + title,
		Sender: "Dinas Komunikasi dan Informatika", Documents: []api.Document{api.NewDocument("surat", "surat.pdf", "application/pdf", body)}}
}

// send publishes j with d and returns the terminal's receipt.
func (c *central) send(d *transport.Dispatcher, j *api.Job) *api.Receipt {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Publish(ctx, j); err != nil {
		c.t.Fatal(err)
	}
	return c.receipt(j.JobID)
}

// receipt waits for the first receipt of job id.
func (c *central) receipt(id string) *api.Receipt {
	c.t.Helper()
	var r *api.Receipt
	err := testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if rs := c.seen[id]; len(rs) > 0 {
			r = rs[0]
			return nil
		}
		return fmt.Errorf("no receipt for %s", id)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

const someSigner = "5f3c0b1d2e4a69788b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f50"

// SIGHUP applies a new dispatcher key, the removal of an old one and a new
// log level to a running tekend, refuses a broken file whole, and names a
// change it cannot apply; systemd hears RELOADING=1 and READY=1 around
// each.
func TestReloadOnSIGHUP(t *testing.T) {
	n := listenNotify(t)
	c := newCentral(t)
	// The broker is the terminal's; the dispatchers are made once it runs.
	o := newOwnTekend(t, nil, func(cfg *daemon.Config) { cfg.LogLevel = "warn" })
	oldKey, oldFile := c.dispatcher(o.broker.URL, "old")
	var statusMu sync.Mutex
	var lastError string // of the newest status
	newKey, newFile := c.dispatcher(o.broker.URL, "new", func(dc *transport.DispatcherConfig) {
		dc.OnStatus = func(_ context.Context, st *api.Status) {
			statusMu.Lock()
			lastError = st.LastError
			statusMu.Unlock()
		}
	})
	statusSays := func(refused bool) error {
		return testenv.WaitFor(context.Background(), 30*time.Second, func() error {
			statusMu.Lock()
			defer statusMu.Unlock()
			if strings.Contains(lastError, "configuration not reloaded") != refused {
				return fmt.Errorf("status last_error %q", lastError)
			}
			return nil
		})
	}
	o.write(func(cfg *daemon.Config) { cfg.Dispatcher.KeyFiles = []string{oldFile} })
	o.start()

	refused := func(r *api.Receipt) bool { return r.Status == api.ReceiptRefused && r.Reason == api.ReasonUnknownKID }
	if r := c.send(newKey, letter(someSigner, "sebelum")); !refused(r) {
		t.Fatalf("a job of the key not yet trusted: %+v", r)
	}
	quiet := letter(someSigner, "senyap")
	if r := c.send(oldKey, quiet); r.Status != api.ReceiptStored {
		t.Fatalf("a job of the trusted key: %+v", r)
	}
	if bytes.Contains(o.logs.Bytes(), []byte(quiet.JobID)) {
		t.Error("logged at info under log_level warn")
	}

	// Rotation, first half: the new key is added, the log level lowered.
	o.write(func(cfg *daemon.Config) {
		cfg.Dispatcher.KeyFiles = []string{oldFile, newFile}
		cfg.LogLevel = "info"
	})
	reloadsBefore := n.count("RELOADING=1")
	if lines := o.reload(); !strings.Contains(lines, "configuration reloaded") {
		t.Fatalf("reload:\n%s", lines)
	}
	added := letter(someSigner, "kunci-baru")
	if r := c.send(newKey, added); r.Status != api.ReceiptStored {
		t.Errorf("a job of the key added: %+v", r)
	}
	if r := c.send(oldKey, letter(someSigner, "kunci-lama")); r.Status != api.ReceiptStored {
		t.Errorf("a job of the key kept: %+v", r)
	}
	if !bytes.Contains(o.logs.Bytes(), []byte(`msg="job stored" job=`+added.JobID)) {
		t.Error("not logged at info after log_level info")
	}
	// systemd: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
	if err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		if n.count("RELOADING=1\nMONOTONIC_USEC=") <= reloadsBefore || n.indexAfter("READY=1", n.lastIndex("RELOADING=1")) < 0 {
			return fmt.Errorf("notify: %q", n.snapshot())
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Second half: the old key is removed.
	o.write(func(cfg *daemon.Config) { cfg.Dispatcher.KeyFiles = []string{newFile} })
	o.reload()
	if r := c.send(oldKey, letter(someSigner, "dicabut")); !refused(r) {
		t.Errorf("a job of the key removed: %+v", r)
	}

	// A file that does not load leaves the configuration running as it was.
	o.write(func(cfg *daemon.Config) {
		cfg.Dispatcher.KeyFiles = []string{oldFile, filepath.Join(t.TempDir(), "missing.pub")}
	})
	if lines := o.reload(); !strings.Contains(lines, "configuration not reloaded") || !strings.Contains(lines, "missing.pub") {
		t.Errorf("a broken file was not refused, or not said why:\n%s", lines)
	}
	if r := c.send(newKey, letter(someSigner, "tetap")); r.Status != api.ReceiptStored {
		t.Errorf("after a refused reload, a job of the key in force: %+v", r)
	}
	if r := c.send(oldKey, letter(someSigner, "tetap-dicabut")); !refused(r) {
		t.Errorf("after a refused reload, a job of the key it named: %+v", r)
	}
	if err := statusSays(true); err != nil {
		t.Errorf("the status does not tell of the refused reload: %v", err)
	}
	if err := os.WriteFile(o.conf, []byte("terminal_id = \"kendari-setda-01\"\n[broker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if lines := o.reload(); !strings.Contains(lines, "configuration not reloaded") {
		t.Errorf("a file that does not parse:\n%s", lines)
	}

	// What a reload cannot apply is named, and the rest goes on as it was.
	o.write(func(cfg *daemon.Config) {
		cfg.Dispatcher.KeyFiles = []string{newFile}
		cfg.Broker.URLs = []string{"tcp://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}
	})
	if lines := o.reload(); !strings.Contains(lines, "broker.urls changed; restart tekend to apply") {
		t.Errorf("the broker change not named:\n%s", lines)
	}
	if r := c.send(newKey, letter(someSigner, "broker-lama")); r.Status != api.ReceiptStored {
		t.Errorf("after a broker change, the broker in use: %+v", r)
	}
	if err := statusSays(false); err != nil {
		t.Errorf("the status still tells of a refused reload after one that applied: %v", err)
	}
}

// lastIndex is the index of the last message that starts with prefix, or -1.
func (n *notifySocket) lastIndex(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.msgs) - 1; i >= 0; i-- {
		if strings.HasPrefix(n.msgs[i], prefix) {
			return i
		}
	}
	return -1
}

// indexAfter is the index of the first message after i that starts with
// prefix, or -1.
func (n *notifySocket) indexAfter(prefix string, i int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for j := i + 1; i >= 0 && j < len(n.msgs); j++ {
		if strings.HasPrefix(n.msgs[j], prefix) {
			return j
		}
	}
	return -1
}

func (n *notifySocket) snapshot() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		if !strings.HasPrefix(m, "WATCHDOG=1") {
			out = append(out, m)
		}
	}
	return out
}

// The reloadable fields the operators' documentation lists are the ones a
// reload applies, and the manual page names each.
func TestReloadableFieldsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(doc), "<!-- reloadable:")
	if !ok {
		t.Fatal("docs/OPERATIONS.md has no reloadable list")
	}
	var listed []string
	for _, line := range strings.Split(list, "\n")[1:] {
		field, ok := strings.CutPrefix(line, "- `")
		if !ok {
			break
		}
		listed = append(listed, strings.TrimSuffix(field, "`"))
	}
	if want := daemon.ReloadableFields(); !slices.Equal(listed, want) {
		t.Errorf("docs/OPERATIONS.md lists %v as reloadable, the code %v", listed, want)
	}
	man, err := os.ReadFile("../packaging/man/tekend.8.in")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range daemon.ReloadableFields() {
		if !strings.Contains(string(man), f) {
			t.Errorf("tekend.8 does not name the reloadable field %s", f)
		}
	}
}
