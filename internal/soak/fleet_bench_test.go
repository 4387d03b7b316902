package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// A fleet of simulated terminals on one private Mosquitto, as the central
// side sees it:
//
//	go test -run '^$' -bench BenchmarkFleet -benchtime 1x ./internal/soak/
//
// Each iteration runs the whole scenario once (with -benchtime 1x, once):
// fleetSize transport.Terminals in this process, each with an in-memory
// store and its retained status; a dispatcher trickling signed jobs over
// them; then every terminal changing its status at one instant, watched by
// a Fleet, a Monitor (per-terminal lag) and the real `tekenctl fleet --json`
// started at that instant.
//
// Figures: connect_all_s, from opening the first terminal to the Fleet
// showing all online; change_published_s, until every changed status had
// its PUBACK; fleet_fresh_s, until the Fleet showed all changed (polled,
// so up to 100 ms late); lag_p50/p99/max_ms, per terminal, from the change
// to its changed status reaching the Monitor; ctl_at_change_s, from the
// change to the exit of the tekenctl started with it, and
// ctl_fresh_at_change, how many it listed changed; ctl_steady_s, ctl_cpu_ms
// and ctl_maxrss_MiB, one tekenctl run once the fleet is steady; broker
// CPU (% of one core) and peak RSS over the trickle window; this process's
// CPU over that window and peak RSS (all 1,000 terminals, the dispatcher,
// Fleet and Monitor); jobs sent and receipts received.
const (
	fleetSize = 1000
	// fleetTrickle is how long jobs trickle, one every
	// fleetTrickle/fleetSize: one job per terminal over the window.
	fleetTrickle = 10 * time.Second
	// The status every terminal connects with, and the one it changes to.
	fleetBefore = "fleet-before"
	fleetAfter  = "fleet-after"
)

func BenchmarkFleet(b *testing.B) {
	keepFileLimit(b, fleetSize+64)
	bin := filepath.Join(b.TempDir(), "tekenctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/tekenctl").CombinedOutput(); err != nil {
		b.Fatalf("build tekenctl: %v\n%s", err, out)
	}
	for range b.N {
		runFleet(b, bin)
	}
}

// keepFileLimit makes sure this process and the Mosquitto it starts may
// hold need descriptors each. Go raises its own soft RLIMIT_NOFILE to the
// hard limit at start but gives a child the original soft limit back (1,024
// on many systems, too few for the broker's 1,000 connections) unless the
// program called syscall.Setrlimit itself: setting it, even to what it
// already is, is what lets Mosquitto inherit it.
func keepFileLimit(b *testing.B, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("file limit: %v", err)
	}
	lim.Cur = max(lim.Cur, min(need, lim.Max))
	if lim.Cur < need {
		b.Skipf("RLIMIT_NOFILE hard limit %d: the fleet needs %d descriptors", lim.Max, need)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("file limit %d: %v", lim.Cur, err)
	}
}

// openFilesLimit reads the soft RLIMIT_NOFILE of another process.
func openFilesLimit(pid int) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, fmt.Errorf("limits of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			if f[0] == "unlimited" {
				return 1 << 62, nil
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("limits of %d: %w", pid, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("limits of %d: no open files line", pid)
}

// fleetTerminal is a terminal's store: the job ids it took, nothing else.
type fleetTerminal struct {
	v *api.Verifier

	mu   sync.Mutex
	jobs []string
}

func (f *fleetTerminal) HandleJob(_ context.Context, raw []byte) (api.Receipt, error) {
	r := api.Receipt{EnvelopeSHA256: api.EnvelopeSHA256(raw), At: time.Now().UTC()}
	j, _, err := f.v.VerifyJob(raw)
	if err != nil {
		r.Status, r.Reason, r.Detail = api.ReceiptRefused, api.Reason(err), err.Error()
		return r, nil
	}
	r.JobID = j.JobID
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.jobs, j.JobID) {
		r.Status = api.ReceiptDuplicate
		return r, nil
	}
	f.jobs = append(f.jobs, j.JobID)
	r.Status = api.ReceiptStored
	return r, nil
}

// HandleControl drops every control message: the scenario sends none.
func (f *fleetTerminal) HandleControl(context.Context, []byte) (transport.ControlAnswer, error) {
	return transport.ControlAnswer{}, nil
}

func (f *fleetTerminal) SyncState(context.Context) (api.Sync, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.Sync{JobsWaiting: slices.Clone(f.jobs), ResultsUndelivered: []string{}}, nil
}

func (f *fleetTerminal) Connected(context.Context) {}

func (f *fleetTerminal) Resend(context.Context) ([]api.Receipt, error) { return nil, nil }

func (f *fleetTerminal) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs)
}

// statusLag records when each terminal's status first carried a version.
type statusLag struct {
	root, version string

	mu sync.Mutex
	at map[string]time.Time
}

func (l *statusLag) handle(m transport.Message) {
	now := time.Now()
	terminal, kind, err := api.ParseTopic(l.root, m.Topic)
	if err != nil || kind != api.KindStatus || len(m.Payload) == 0 {
		return
	}
	s, err := api.DecodeStatus(m.Payload)
	if err != nil || s.Version != l.version {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.at[terminal]; !ok {
		l.at[terminal] = now
	}
}

func (l *statusLag) lags(since time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Duration, 0, len(l.at))
	for _, at := range l.at {
		out = append(out, at.Sub(since))
	}
	slices.Sort(out)
	return out
}

// fleetTerminalID names terminal i as a real fleet would.
func fleetTerminalID(i int) string { return fmt.Sprintf("bench-%04d", i) }

func runFleet(b *testing.B, tekenctl string) {
	ctx := b.Context()
	broker := testenv.StartMosquitto(b)
	brokerPIDs := listenerPIDs(broker.Port)
	if len(brokerPIDs) != 1 {
		b.Fatalf("mosquitto on port %d: %d listening processes", broker.Port, len(brokerPIDs))
	}
	brokerPID := brokerPIDs[0]
	if n, err := openFilesLimit(brokerPID); err != nil {
		b.Fatal(err)
	} else if n < fleetSize+16 {
		b.Fatalf("mosquitto may open %d files: too few for %d terminals", n, fleetSize)
	}
	quiet := slog.New(slog.DiscardHandler)
	conn := func(id string) transport.Connection {
		return transport.Connection{Brokers: []string{broker.URL}, ClientID: id, MaxReconnectInterval: time.Second, Logger: quiet}
	}

	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := api.NewSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := api.KeySet(key.Public())
	if err != nil {
		b.Fatal(err)
	}

	// The central side's own watchers, before any terminal: every status
	// comes to them live, the way an operator's fleet view stays open.
	fleet, err := transport.OpenFleet(ctx, conn("bench-fleet"), "")
	if err != nil {
		b.Fatal(err)
	}
	defer closeQuietly(fleet.Close)
	lag := &statusLag{root: api.DefaultRoot, version: fleetAfter, at: map[string]time.Time{}}
	mon, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: conn("bench-lag"),
		Filters:    []string{api.AllTerminals(api.DefaultRoot, api.KindStatus)},
		Handle:     lag.handle,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer closeQuietly(mon.Close)

	var receipts, stored atomic.Int64
	d, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: conn("bench-central"), Signer: signer,
		OnReceipt: func(_ context.Context, r *api.Receipt) {
			receipts.Add(1)
			if r.Status == api.ReceiptStored {
				stored.Add(1)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer closeQuietly(d.Close)
	if err := d.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}

	// (a) Connect the fleet and wait until the Fleet shows every
	// terminal online with its first status.
	handlers := make([]*fleetTerminal, fleetSize)
	terms := make([]*transport.Terminal, fleetSize)
	start := time.Now()
	for i := range fleetSize {
		id := fleetTerminalID(i)
		handlers[i] = &fleetTerminal{v: &api.Verifier{Keys: keys, Terminal: id}}
		t, err := transport.OpenTerminal(transport.TerminalConfig{
			Connection: conn(id), TerminalID: id, Handler: handlers[i],
			Status: func() api.Status { return api.Status{Version: fleetBefore, TokenPresent: true} },
		})
		if err != nil {
			b.Fatalf("terminal %s: %v", id, err)
		}
		terms[i] = t
	}
	defer closeTerminals(terms)
	if err := testenv.WaitFor(ctx, time.Minute, fleetShows(fleet, fleetBefore)); err != nil {
		b.Fatalf("fleet after connecting: %v", err)
	}
	connectAll := time.Since(start)

	// The measurement window: the trickle, with the change in its middle.
	brokerCPU0, err := cpuTicks(brokerPID)
	if err != nil {
		b.Fatal(err)
	}
	self0 := selfUsage(b)
	brokerRSS := sync.OnceValue(rssPeak(func() []int { return []int{brokerPID} }, 100*time.Millisecond))
	defer brokerRSS() // stops the sampler when the scenario fails early
	window := time.Now()

	tctx, stopTrickle := context.WithCancel(ctx)
	var sent atomic.Int64
	var trickle sync.WaitGroup
	trickle.Go(func() { trickleJobs(tctx, b, d, &sent) })
	defer func() { stopTrickle(); trickle.Wait() }()

	// Half-way, (b): every terminal publishes a changed status at once,
	// and tekenctl starts reading the fleet at that instant.
	if err := testenv.WaitFor(ctx, time.Minute, func() error {
		if n := sent.Load(); n < fleetSize/2 {
			return fmt.Errorf("%d of %d jobs sent", n, fleetSize)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	change := time.Now()
	ctl := startFleetCtl(b, tekenctl, broker.URL)
	var published sync.WaitGroup
	var publishErrs atomic.Int64
	for i, t := range terms {
		published.Go(func() {
			st := api.Status{Version: fleetAfter, TokenPresent: true, JobsWaiting: handlers[i].waiting()}
			if err := t.PublishStatus(ctx, st); err != nil {
				publishErrs.Add(1)
			}
		})
	}
	published.Wait()
	publishedAll := time.Since(change)
	if n := publishErrs.Load(); n > 0 {
		b.Fatalf("%d terminals could not publish their changed status", n)
	}
	if err := testenv.WaitFor(ctx, 30*time.Second, fleetShows(fleet, fleetAfter)); err != nil {
		b.Fatalf("fleet after the change: %v", err)
	}
	fleetFresh := time.Since(change)
	atChange := ctl.wait(b)
	atChangeTook := atChange.exited.Sub(change)
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		if n := len(lag.lags(change)); n < fleetSize {
			return fmt.Errorf("%d of %d changed statuses seen", n, fleetSize)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	lags := lag.lags(change)

	trickle.Wait()
	trickleWindow := time.Since(window)
	brokerCPU1, err := cpuTicks(brokerPID)
	if err != nil {
		b.Fatal(err)
	}
	self1 := selfUsage(b)
	brokerPeak := brokerRSS()
	jobs := sent.Load()
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		if n := stored.Load(); n < jobs {
			return fmt.Errorf("%d of %d jobs have a stored receipt", n, jobs)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}

	// The same command once the fleet is steady: its own cost, and what
	// an operator pays for one look.
	steady := startFleetCtl(b, tekenctl, broker.URL).wait(b)
	if fresh := steady.fresh(fleetAfter); fresh != fleetSize {
		b.Fatalf("steady tekenctl fleet: %d of %d terminals fresh", fresh, fleetSize)
	}

	ticks := float64(clockTicks)
	b.ReportMetric(connectAll.Seconds(), "connect_all_s")
	b.ReportMetric(publishedAll.Seconds(), "change_published_s")
	b.ReportMetric(fleetFresh.Seconds(), "fleet_fresh_s")
	b.ReportMetric(lags[len(lags)/2].Seconds()*1e3, "lag_p50_ms")
	b.ReportMetric(lags[len(lags)*99/100].Seconds()*1e3, "lag_p99_ms")
	b.ReportMetric(lags[len(lags)-1].Seconds()*1e3, "lag_max_ms")
	b.ReportMetric(float64(atChange.fresh(fleetAfter)), "ctl_fresh_at_change")
	b.ReportMetric(atChangeTook.Seconds(), "ctl_at_change_s")
	b.ReportMetric(steady.took.Seconds(), "ctl_steady_s")
	b.ReportMetric(steady.cpu.Seconds()*1e3, "ctl_cpu_ms")
	b.ReportMetric(float64(steady.maxRSS)/(1<<20), "ctl_maxrss_MiB")
	b.ReportMetric(float64(brokerCPU1-brokerCPU0)/ticks/trickleWindow.Seconds()*100, "broker_cpu_%")
	b.ReportMetric(float64(brokerPeak)/(1<<20), "broker_rss_MiB")
	b.ReportMetric((self1.cpu-self0.cpu).Seconds()/trickleWindow.Seconds()*100, "bench_proc_cpu_%")
	b.ReportMetric(float64(self1.maxRSS)/(1<<20), "bench_proc_maxrss_MiB")
	b.ReportMetric(float64(jobs), "jobs_sent")
	b.ReportMetric(float64(receipts.Load()), "receipts")
	if fresh := atChange.fresh(fleetAfter); fresh != fleetSize {
		b.Logf("tekenctl fleet started at the change listed %d of %d terminals with the changed status", fresh, fleetSize)
	}
}

// fleetShows is a WaitFor condition: the Fleet holds every terminal online
// with the given version.
func fleetShows(f *transport.Fleet, version string) func() error {
	return func() error {
		snap, invalid := f.Snapshot()
		if invalid > 0 {
			return testenv.Permanent(fmt.Errorf("%d invalid status messages", invalid))
		}
		n := 0
		for _, s := range snap {
			if s.State == api.StateOnline && s.Version == version {
				n++
			}
		}
		if n < fleetSize {
			return fmt.Errorf("%d of %d terminals online with %s", n, fleetSize, version)
		}
		return nil
	}
}

// trickleJobs publishes one signed job to each terminal in turn, one every
// fleetTrickle/fleetSize: a publish slower than that (during the change)
// delays the rest rather than dropping one.
func trickleJobs(ctx context.Context, b *testing.B, d *transport.Dispatcher, sent *atomic.Int64) {
	tick := time.NewTicker(fleetTrickle / fleetSize)
	defer tick.Stop()
	for i := range fleetSize {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UTC().Truncate(time.Second)
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		j := &api.Job{
			V: api.Version, JobID: id, Terminal: fleetTerminalID(i % fleetSize),
			IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			Signer:    api.Signatory{CertSHA256: strings.Repeat("ab", 32), Name: "Kepala Bagian Umum"},
			Title:     "Undangan rapat koordinasi",
			Number:    "005/" + strconv.Itoa(i) + "/SETDA",
			Sender:    "Sekretariat Daerah",
			Documents: []api.Document{api.NewDocument("d1", "undangan.pdf", "application/pdf", []byte("%PDF-1.7 "+id))},
		}
		if err := d.Publish(ctx, j); err != nil {
			if ctx.Err() == nil {
				b.Errorf("publish job %d: %v", i, err)
			}
			return
		}
		sent.Add(1)
	}
}

// fleetCtl is a `tekenctl fleet --json` run.
type fleetCtl struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	errOut  bytes.Buffer
	started time.Time

	exited time.Time
	took   time.Duration
	cpu    time.Duration // user and system
	maxRSS int64         // bytes: VmHWM, last sampled before it exited
	hwm    func() int64
	fleet  []api.Status
}

func startFleetCtl(b *testing.B, bin, url string) *fleetCtl {
	c := &fleetCtl{cmd: exec.Command(bin, "fleet", "--json", "--broker", url)}
	home := b.TempDir()
	// No operator's config file or TEKEN_ variables reach it.
	env := []string{"HOME=" + home}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEKEN_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errOut
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		b.Fatalf("start tekenctl fleet: %v", err)
	}
	// Its own peak, sampled: the rusage of its exit would not do, since
	// exec records the peak of the memory it replaced, which for a child
	// started by vfork is this process's.
	pid := c.cmd.Process.Pid
	c.hwm = sync.OnceValue(rssPeak(func() []int { return []int{pid} }, 10*time.Millisecond, "VmHWM"))
	// A scenario that fails before wait leaves neither the process nor
	// the sampler behind.
	b.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		c.hwm()
	})
	return c
}

func (c *fleetCtl) wait(b *testing.B) *fleetCtl {
	err := c.cmd.Wait()
	c.exited = time.Now()
	c.maxRSS = c.hwm()
	c.took = c.exited.Sub(c.started)
	if err != nil {
		b.Fatalf("tekenctl fleet: %v\n%s", err, c.errOut.String())
	}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		c.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err := json.Unmarshal(c.out.Bytes(), &c.fleet); err != nil {
		b.Fatalf("tekenctl fleet --json: %v\n%.500s", err, c.out.String())
	}
	return c
}

// fresh counts the terminals listed online with the given version.
func (c *fleetCtl) fresh(version string) int {
	n := 0
	for _, s := range c.fleet {
		if s.State == api.StateOnline && s.Version == version {
			n++
		}
	}
	return n
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns utime+stime of pid from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of %d: no command name in %q", pid, raw)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of %d: short stat %q", pid, raw)
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: utime: %w", pid, err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: stime: %w", pid, err)
	}
	return utime + stime, nil
}

// usage is this process's CPU and peak resident set: the 1,000 terminals,
// the dispatcher, the Fleet and Monitor, and the test binary itself.
type usage struct {
	cpu    time.Duration
	maxRSS int64
}

func selfUsage(b *testing.B) usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSS: ru.Maxrss << 10}
}

func closeQuietly(closeFn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = closeFn(ctx)
}

// closeTerminals closes the fleet side by side: one after another, 1,000
// DISCONNECTs take as long as the scenario.
func closeTerminals(terms []*transport.Terminal) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range terms {
		if t != nil {
			wg.Go(func() { _ = t.Close(ctx) })
		}
	}
	wg.Wait()
}
