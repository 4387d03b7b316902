package soak

import (
	"bufio"
	"context"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// tekendBinary builds tekend once into dir, as make build does but without
// the version stamp, and returns its path.
func tekendBinary(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tekend")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/tekend").CombinedOutput(); err != nil {
		t.Fatalf("build tekend: %v\n%s", err, out)
	}
	return bin
}

// tekend is a tekend process of a test's own, run and stopped like the
// service: its own data directory, a dispatcher key, a broker, loopback
// listeners on free ports, no smart-card service (pcscd's socket points to
// nowhere: a job is stored and waits, which is all the backlog tests need).
type tekend struct {
	t        testing.TB
	bin      string
	conf     string
	logPath  string
	metrics  string // http://127.0.0.1:PORT/metrics
	terminal string

	mu     sync.Mutex
	cmd    *exec.Cmd
	waited <-chan error
}

// newTekend writes the configuration of a tekend for terminal that trusts
// the dispatcher key in pubPath and uses the broker at url.
func newTekend(t testing.TB, bin, terminal, url, pubPath string) *tekend {
	t.Helper()
	dir := t.TempDir()
	metricsPort, kioskPort := testenv.FreePort(t), testenv.FreePort(t)
	d := &tekend{t: t, bin: bin, terminal: terminal, conf: filepath.Join(dir, "tekend.toml"), logPath: filepath.Join(dir, "tekend.log"),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	conf := tekendConfig(terminal, filepath.Join(dir, "data"), "info", url, pubPath, kioskPort, metricsPort, "")
	if err := os.WriteFile(d.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)
	return d
}

// start runs tekend, appending to its log, with the environment entries
// extra added (NOTIFY_SOCKET=… to time READY=1).
func (d *tekend) start(extra ...string) {
	d.t.Helper()
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(d.bin, "-config", d.conf)
	var env []string
	for _, kv := range os.Environ() {
		// Text on stderr, never the journal; no memory limit but the
		// one a test sets.
		if !strings.HasPrefix(kv, "JOURNAL_STREAM=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(append(env, extra...), sandbox.SocketEnv+"="+filepath.Join(filepath.Dir(d.conf), "no-pcscd"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	waited, err := sandbox.StartHeld(cmd)
	if err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.cmd, d.waited = cmd, waited
	d.mu.Unlock()
}

// pid is the running tekend's process id, 0 when none runs.
func (d *tekend) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// stop ends tekend with SIGTERM, as systemd does, and waits for it.
func (d *tekend) stop() {
	d.t.Helper()
	d.mu.Lock()
	cmd, waited := d.cmd, d.waited
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-waited:
		if err != nil {
			d.t.Errorf("tekend exited: %v\n%s", err, tail(d.logPath))
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-waited
		d.t.Errorf("tekend did not stop within a minute of SIGTERM\n%s", tail(d.logPath))
	}
}

func (d *tekend) kill() {
	d.mu.Lock()
	cmd, waited := d.cmd, d.waited
	d.cmd = nil
	d.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-waited
	}
}

// metric sums the samples of the metric name whose labels contain every
// one of labels (`result="accepted"`); it fails when tekend does not
// answer.
func (d *tekend) metric(name string, labels ...string) (float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(d.metrics)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return sumMetric(res.Body, name, labels...)
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)`)

func sumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		m := sampleLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(m[2], l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no metric %s%v", name, labels)
	}
	return sum, nil
}

// procStatusKB reads a field of /proc/PID/status given in kB (VmHWM,
// VmRSS) and returns it in bytes.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// rssPeak samples a field of /proc/PID/status (VmRSS unless field says
// otherwise) for the processes pids returns, every interval, until the
// function it returns is called, which returns the largest sum seen: for a
// broker, which ran before, what the drain cost; for tekend, how its peak
// splits between what it allocated (RssAnon) and the file pages it maps
// (RssFile).
func rssPeak(pids func() []int, interval time.Duration, field ...string) (stop func() int64) {
	name := "VmRSS"
	if len(field) > 0 {
		name = field[0]
	}
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			var sum int64
			for _, pid := range pids() {
				if v, err := procStatusKB(pid, name); err == nil {
					sum += v
				}
			}
			peak = max(peak, sum)
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	})
	return func() int64 { close(done); wg.Wait(); return peak }
}

// listenerPIDs returns the processes that hold the socket listening on
// 127.0.0.1:port: the broker, whichever program it is (RabbitMQ's beam.smp
// is not the process the sandbox started).
func listenerPIDs(port int) []int {
	inodes := map[string]bool{}
	b, _ := os.ReadFile("/proc/net/tcp")
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == want && f[3] == "0A" { // TCP_LISTEN
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	var pids []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// central is the Go central library as a letter system runs it, counting
// what comes back.
type central struct {
	d      *transport.Dispatcher
	signer *api.Signer
	pub    string // the dispatcher key's PEM file

	mu     sync.Mutex
	stored map[string]int // receipts: job id → "stored" receipts
	dups   int            // "duplicate" receipts
	syncs  int
	resent int
}

func newCentral(t testing.TB, url string) *central {
	t.Helper()
	return newCentralSigning(t, url, api.AlgES256)
}

// newCentralSigning is newCentral with a dispatcher key of the JWS
// algorithm alg.
func newCentralSigning(t testing.TB, url, alg string) *central {
	t.Helper()
	key, err := api.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	c := &central{pub: filepath.Join(t.TempDir(), "dispatcher.pub"), stored: map[string]int{}}
	if err := os.WriteFile(c.pub, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if c.signer, err = api.NewSigner(key); err != nil {
		t.Fatal(err)
	}
	c.d, err = transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{url}, ClientID: "central-" + strconv.Itoa(rand.IntN(1e6)),
			MaxReconnectInterval: time.Second, Logger: slog.New(slog.DiscardHandler)},
		Signer: c.signer, MaxMessageBytes: testenv.Recommended.MaxMessageSize,
		OnReceipt: func(_ context.Context, r *api.Receipt) {
			c.mu.Lock()
			defer c.mu.Unlock()
			switch r.Status {
			case api.ReceiptStored:
				c.stored[r.JobID]++
			case api.ReceiptDuplicate:
				c.dups++
			}
		},
		OnSync: func(context.Context, *api.Sync) {
			c.mu.Lock()
			c.syncs++
			c.mu.Unlock()
		},
		OnResend: func(_ string, n int) {
			c.mu.Lock()
			c.resent += n
			c.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.d.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// counts returns the distinct jobs with a stored receipt, the most stored
// receipts one job had, and the duplicate receipts.
func (c *central) counts() (stored, most, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.stored {
		most = max(most, n)
	}
	return len(c.stored), most, c.dups
}

func (c *central) syncCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs
}

// waitStored waits until tekend holds want jobs stored and not done
// (teken_jobs_waiting, read from its store, so it counts across restarts).
func waitStored(d *tekend, want int, timeout time.Duration) error {
	return testenv.WaitFor(context.Background(), timeout, func() error {
		if d.pid() == 0 {
			return testenv.Permanent(errors.New("tekend not running"))
		}
		got, err := d.metric("teken_jobs_waiting")
		if err != nil {
			return err
		}
		if int(got) < want {
			return fmt.Errorf("%v of %d jobs stored", got, want)
		}
		return nil
	})
}

// tekendConfig is the tekend.toml every tekend of this package runs with:
// the terminal, its data, the broker, the trusted key and both listeners
// on 127.0.0.1; extra sections follow.
func tekendConfig(terminal, dataDir, logLevel, brokerURL, pubPath string, kioskPort, metricsPort int, extra string) string {
	return fmt.Sprintf(`terminal_id = %q
data_dir = %q
log_level = %q

[broker]
urls = [%q]
max_reconnect_interval = "2s"

[dispatcher]
key_files = [%q]

[token]
# The virtual tokens keep the factory PIN 123456.
refuse_default_pin = false

[kiosk]
listen = "127.0.0.1:%d"

[metrics]
listen = "127.0.0.1:%d"
`, terminal, dataDir, logLevel, brokerURL, pubPath, kioskPort, metricsPort) + extra
}
