package soak

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/transport"
)

// A signing terminal that was offline for a week, end to end:
//
//	go test -run '^$' -bench BenchmarkOfflineWeek -benchtime 1x ./internal/soak/
//
// One iteration is the whole scenario. A real Mosquitto, pcscd with an
// official's software token on its reader, and tekend as its own process,
// trusting the official's CA. tekend connects once, so that its persistent
// session and subscriptions exist at the broker (its connect Sync at the
// central side says so), and is stopped. The central side then queues
// offlineJobs letters for it (TEKEN_OFFLINE_JOBS overrides the number),
// each one small PDF to be signed PAdES by that official, as signed job
// envelopes of about 2 KB published one a line with `mosquitto_pub -q 1 -l`.
// tekend starts again and takes the week's backlog in; the official then
// signs offlineSigned letters, the most urgent the page lists, in batches
// of offlineBatch through the kiosk's API as the page does: each letter's
// document opened, then one sign request with the batch's ids and the
// PIN, which answers once the batch is signed.
//
// The token stays on the reader while the backlog comes in, as on a desk
// where the terminal was off: every letter stored for the present official
// then asks for a refresh of the page's list. TEKEN_OFFLINE_TOKEN=after-intake
// puts the token on the reader only once every job is stored, to tell
// that cost from the intake's own (default: present).
//
// Figures: dispatch_s, mosquitto_pub publishing the backlog to the broker
// while tekend is away, until its last PUBACK; intake_s and intake_jobs/s,
// from tekend's start until the central side holds a stored receipt for
// every job; sign_s, from the official opening the first letter until the
// last batch is signed (documents opened, PIN verified, every signature,
// the page's list refreshed as the batch goes), and sign_ms/letter, that
// per letter signed; drain_s, from then until the central side holds every
// signed result and tekend's outbox is empty (teken_results_undelivered
// 0); total_s, from the start of dispatch to the end of the drain;
// raw_msgs/s, the same envelope lines published the same way to a
// mosquitto_sub QoS 1 subscriber on the same broker (rawRate), before the
// scenario; ratio, intake_jobs/s over raw_msgs/s. It fails on a job lost,
// stored twice or refused, and unless exactly offlineSigned signed results,
// one for each letter signed, reach the central side.
const (
	offlineJobs     = 10_000
	offlineSigned   = 200
	offlineBatch    = 20
	offlineTerminal = "offline-setda-01"
	// offlineTimeout bounds each wait of the scenario: a loaded machine,
	// not a measurement.
	offlineTimeout = 15 * time.Minute
)

func BenchmarkOfflineWeek(b *testing.B) {
	testenv.LookPath(b, "mosquitto_pub")
	testenv.LookPath(b, "mosquitto_sub")
	n := offlineJobs
	if s := os.Getenv("TEKEN_OFFLINE_JOBS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < offlineSigned {
			b.Fatalf("TEKEN_OFFLINE_JOBS=%q: want a number of at least %d", s, offlineSigned)
		}
		n = v
	}
	var tokenLate bool
	switch s := os.Getenv("TEKEN_OFFLINE_TOKEN"); s {
	case "", "present":
	case "after-intake":
		tokenLate = true
	default:
		b.Fatalf("TEKEN_OFFLINE_TOKEN=%q: want present or after-intake", s)
	}
	bin := tekendBinary(b, b.TempDir())
	for range b.N {
		f := runOfflineWeek(b, bin, n, tokenLate)
		intake := float64(n) / f.intake.Seconds()
		b.ReportMetric(f.dispatch.Seconds(), "dispatch_s")
		b.ReportMetric(f.intake.Seconds(), "intake_s")
		b.ReportMetric(intake, "intake_jobs/s")
		b.ReportMetric(f.sign.Seconds(), "sign_s")
		b.ReportMetric(f.sign.Seconds()*1000/offlineSigned, "sign_ms/letter")
		b.ReportMetric(f.drain.Seconds(), "drain_s")
		b.ReportMetric(f.total.Seconds(), "total_s")
		b.ReportMetric(f.raw, "raw_msgs/s")
		b.ReportMetric(intake/f.raw, "ratio")
	}
}

// offlineFigures are what one scenario measured.
type offlineFigures struct {
	dispatch, intake, sign, drain, total time.Duration
	raw                                  float64 // messages per second
}

func runOfflineWeek(b *testing.B, bin string, n int, tokenLate bool) offlineFigures {
	b.Helper()
	pcscd := testenv.StartPCSCD(b)
	broker := testenv.StartMosquitto(b)
	ca := tekentest.NewSignerCA(b)
	official := ca.NewOfficial(b, "Siti Rahmawati", "198703152010012003", "123456", 7101)
	insert := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := official.Card.Insert(ctx, pcscd.VPCDAddr(0)); err != nil {
			b.Fatalf("insert the official's token: %v\npcscd log:\n%s", err, pcscd.Log())
		}
	}
	if !tokenLate {
		insert()
	}
	c := newOfflineCentral(b, broker.URL)
	d, kioskURL := newSigningTekend(b, bin, broker.URL, c.pub, ca.PEMPath, pcscd.Socket)

	// The envelopes first: signing them is the central side's cost, and
	// the raw baseline replays the same lines.
	jobsFile := filepath.Join(b.TempDir(), "jobs")
	lines, sent := offlineEnvelopes(b, c.signer, official, n)
	if err := os.WriteFile(jobsFile, lines, 0o600); err != nil {
		b.Fatal(err)
	}
	var f offlineFigures
	f.raw = rawRate(b, broker.URL, broker.Port, jobsFile, n)

	// The first run makes the persistent session and its subscriptions;
	// its connect Sync says they are in place.
	d.start()
	if err := testenv.WaitFor(context.Background(), 2*time.Minute, func() error {
		if c.syncCount() == 0 {
			return errors.New("no sync from tekend yet")
		}
		return nil
	}); err != nil {
		b.Fatalf("%v\ntekend log:\n%s", err, tail(d.logPath))
	}
	d.stop()

	// The week: the backlog waits at the broker.
	start := time.Now()
	if out, err := mosquittoPub(b, broker.Port, api.Topic(api.DefaultRoot, offlineTerminal, api.KindJobs), jobsFile).CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	f.dispatch = time.Since(start)

	intakeStart := time.Now()
	d.start()
	if err := testenv.WaitFor(context.Background(), offlineTimeout, func() error {
		if refused, example := c.refusals(); refused > 0 {
			return testenv.Permanent(fmt.Errorf("%d jobs refused, e.g. %s", refused, example))
		}
		if got, _, _ := c.counts(); got < n {
			return fmt.Errorf("%d of %d stored receipts", got, n)
		}
		return nil
	}); err != nil {
		b.Fatalf("%v\ntekend log:\n%s", err, tail(d.logPath))
	}
	f.intake = time.Since(intakeStart)
	c.checkIntake(b, d, sent)
	if tokenLate {
		insert()
	}

	waitLetters(b, d, kioskURL, official, n)
	var chosen []string
	chosen, f.sign = signLetters(b, d, kioskURL, official, sent)

	drainStart := time.Now()
	if err := testenv.WaitFor(context.Background(), offlineTimeout, func() error {
		if got := c.resultCount(); got < len(chosen) {
			return fmt.Errorf("%d of %d results at the central side", got, len(chosen))
		}
		undelivered, err := d.metric("teken_results_undelivered")
		if err != nil {
			return err
		}
		if undelivered != 0 {
			return fmt.Errorf("%v results in tekend's outbox", undelivered)
		}
		return nil
	}); err != nil {
		b.Fatalf("drain: %v\ntekend log:\n%s", err, tail(d.logPath))
	}
	f.drain = time.Since(drainStart)
	f.total = time.Since(start)

	c.checkResults(b, chosen, official)
	waiting, err := d.metric("teken_jobs_waiting")
	if err != nil {
		b.Fatal(err)
	}
	if int(waiting) != n-len(chosen) {
		b.Fatalf("tekend holds %v jobs waiting, want %d", waiting, n-len(chosen))
	}
	if stored, most, dups := c.counts(); stored != n || most != 1 || dups != 0 {
		b.Fatalf("after signing: %d of %d jobs with a stored receipt (most for one job %d), %d duplicate receipts", stored, n, most, dups)
	}
	d.stop()
	return f
}

// offlineEnvelopes signs n distinct letters for offlineTerminal, each one
// small PDF the official is to sign PAdES, and returns the envelopes one a
// line, newline-terminated, and their job ids.
func offlineEnvelopes(b *testing.B, s *api.Signer, o *tekentest.Official, n int) ([]byte, map[string]bool) {
	b.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	var out bytes.Buffer
	ids := make(map[string]bool, n)
	for i := range n {
		pdf := testenv.TextPDF(fmt.Sprintf("Surat undangan rapat koordinasi nomor 005/%d/SETDA/2026", i+1))
		if i == 0 {
			if _, err := pades.Inspect(pdf, nil, pades.Limits{}); err != nil {
				b.Fatalf("the letter's PDF is not one tekend signs: %v", err)
			}
		}
		doc := api.NewDocument("surat", "surat.pdf", "application/pdf", pdf)
		doc.Format = api.FormatPAdES
		// Due dates spread over the month, as a week's mail is; the
		// page lists the most urgent first.
		j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: offlineTerminal, IssuedAt: now,
			ExpiresAt: now.Add(7*24*time.Hour + time.Duration(rand.IntN(21*24))*time.Hour),
			Signer:    api.Signatory{CertSHA256: o.Hash, Name: o.Name},
			Title:     fmt.Sprintf("Undangan rapat koordinasi %d", i+1), Number: fmt.Sprintf("005/%d/SETDA/2026", i+1), Sender: "Sekretariat Daerah",
			Documents: []api.Document{doc}}
		env, err := s.SignJob(j)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.ContainsAny(env, "\r\n") {
			b.Fatalf("job %d: the envelope is not one line", i+1)
		}
		if len(env) < 1<<10 || len(env) > 3<<10 {
			b.Fatalf("job %d: envelope of %d bytes, want 1–3 KB", i+1, len(env))
		}
		out.Write(env)
		out.WriteByte('\n')
		ids[j.JobID] = true
	}
	return out.Bytes(), ids
}

// newSigningTekend writes the configuration of a tekend for
// offlineTerminal that trusts the dispatcher key in pubPath and the signer
// CA in caPEM and reaches the pcscd at socket; startSigningTekend runs it.
// It returns the tekend and its kiosk's base URL.
func newSigningTekend(b *testing.B, bin, url, pubPath, caPEM, socket string) (*signingTekend, string) {
	b.Helper()
	dir := b.TempDir()
	metricsPort, kioskPort := testenv.FreePort(b), testenv.FreePort(b)
	d := &signingTekend{tekend: &tekend{t: b, bin: bin, terminal: offlineTerminal, conf: filepath.Join(dir, "tekend.toml"),
		logPath: filepath.Join(dir, "tekend.log"), metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}, socket: socket}
	conf := tekendConfig(offlineTerminal, filepath.Join(dir, "data"), "info", url, pubPath, kioskPort, metricsPort, fmt.Sprintf(`
[signing]
signer_ca_files = [%q]
shutdown_grace = "2s"
`, caPEM))
	if err := os.WriteFile(d.conf, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.kill)
	return d, fmt.Sprintf("http://127.0.0.1:%d", kioskPort)
}

// signingTekend is a tekend whose pcscd is a real one: tekend.start points
// it at none.
type signingTekend struct {
	*tekend
	socket string
}

// start runs tekend as tekend.start does, with the pcscd socket.
func (d *signingTekend) start() {
	d.t.Helper()
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(d.bin, "-config", d.conf)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JOURNAL_STREAM=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, sandbox.SocketEnv+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, sandbox.SocketEnv+"="+d.socket)
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

// waitLetters waits until the kiosk counts every one of the n letters for
// the official and can sign.
func waitLetters(b *testing.B, d *signingTekend, kioskURL string, o *tekentest.Official, n int) {
	b.Helper()
	if err := testenv.WaitFor(context.Background(), offlineTimeout, func() error {
		v, err := kioskView(kioskURL)
		switch {
		case err != nil:
			return err
		case v.Signer == nil || v.Signer.CertSHA256 != o.Hash:
			return fmt.Errorf("the page shows no signer or another (state %s)", v.State)
		case v.JobsTotal < n:
			return fmt.Errorf("the page counts %d of %d letters", v.JobsTotal, n)
		case !v.CanSign:
			return fmt.Errorf("the page cannot sign yet (state %s, error %+v)", v.State, v.Error)
		}
		return nil
	}); err != nil {
		b.Fatalf("kiosk: %v\ntekend log:\n%s", err, tail(d.logPath))
	}
}

// signLetters signs offlineSigned letters as the official does at the
// page, offlineBatch at a time, each time the most urgent the page lists
// (it lists a hundred, and each signed batch brings the next up), and
// returns them and how long that took.
func signLetters(b *testing.B, d *signingTekend, kioskURL string, o *tekentest.Official, sent map[string]bool) ([]string, time.Duration) {
	b.Helper()
	var k kioskClient
	if err := k.open(kioskURL); err != nil {
		b.Fatalf("open the kiosk page: %v", err)
	}
	chosen := make([]string, 0, offlineSigned)
	done := map[string]bool{}
	start := time.Now()
	for len(chosen) < offlineSigned {
		var batch []string
		if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
			v, err := kioskView(kioskURL)
			if err != nil {
				return err
			}
			batch = batch[:0]
			for _, j := range v.Jobs {
				if done[j.ID] {
					continue // signed: the page's list is a moment behind
				}
				if !sent[j.ID] || len(j.Documents) != 1 || !j.Documents[0].Renderable {
					b.Fatalf("the page lists letter %s (%d documents) that was not sent as it is", j.ID, len(j.Documents))
				}
				if batch = append(batch, j.ID); len(batch) == min(offlineBatch, offlineSigned-len(chosen)) {
					return nil
				}
			}
			return fmt.Errorf("the page lists %d letters to sign, want %d", len(batch), offlineBatch)
		}); err != nil {
			b.Fatalf("%v\ntekend log:\n%s", err, tail(d.logPath))
		}
		for _, id := range batch {
			if status := k.get("/api/documents/" + id + "/0"); status != http.StatusOK {
				b.Fatalf("open letter %s: status %d\ntekend log:\n%s", id, status, tail(d.logPath))
			}
		}
		status, answer, err := kioskPost(&k, "/api/sign", map[string]any{"job_ids": batch, "pin": o.PIN})
		if err != nil || status != http.StatusOK {
			b.Fatalf("sign letters %d–%d: status %d, %s, err %v\ntekend log:\n%s", len(chosen)+1, len(chosen)+len(batch), status, answer, err, tail(d.logPath))
		}
		for _, id := range batch {
			done[id] = true
		}
		chosen = append(chosen, batch...)
		// The answer comes once the batch is done; the counter says
		// tekend completed every letter of it.
		want := len(chosen)
		if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
			signed, err := d.metric("teken_jobs_completed_total", `outcome="signed"`)
			if err != nil {
				return err
			}
			if int(signed) < want {
				return fmt.Errorf("%v of %d letters signed", signed, want)
			}
			return nil
		}); err != nil {
			b.Fatalf("%v\ntekend log:\n%s", err, tail(d.logPath))
		}
		// Back from the done screen to the list, as the official taps.
		if status, answer, err := kioskPost(&k, "/api/dismiss", map[string]any{}); err != nil || status != http.StatusOK {
			b.Fatalf("dismiss: status %d, %s, err %v", status, answer, err)
		}
	}
	return chosen, time.Since(start)
}

// kioskPost is kioskClient.post with the answer's body and no deadline
// shorter than a batch may take on a slow machine.
func kioskPost(k *kioskClient, path string, body any) (int, []byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, k.base+path, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", k.base)
	req.Header.Set("X-Teken-CSRF", k.csrf)
	c := http.Client{Timeout: 5 * time.Minute}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("post %s: %w", path, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("post %s: read the answer: %w", path, err)
	}
	return res.StatusCode, answer, nil
}

// kioskView is the view the kiosk shows now: the first event of its
// stream, which a new page gets at once.
func kioskView(base string) (kiosk.View, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	if err != nil {
		return kiosk.View{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return kiosk.View{}, fmt.Errorf("kiosk events: %w", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	// Ten thousand letters are a few megabytes of JSON.
	sc.Buffer(make([]byte, 1<<20), 128<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var v kiosk.View
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				return kiosk.View{}, fmt.Errorf("kiosk view: %w", err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return kiosk.View{}, fmt.Errorf("kiosk events: %w", err)
	}
	return kiosk.View{}, errors.New("kiosk events: the stream ended without a view")
}

// offlineCentral is the Go central library as a letter system runs it,
// counting receipts, refusals and results.
type offlineCentral struct {
	d      *transport.Dispatcher
	signer *api.Signer
	pub    string // the dispatcher key's PEM file

	mu       sync.Mutex
	stored   map[string]int // job id → "stored" receipts
	dups     int            // "duplicate" receipts
	refused  int            // "refused" receipts
	example  string         // one refusal, for the failure message
	syncs    int
	results  map[string]*api.Result // job id → its result, as OnResult took it
	repeated int                    // results OnResult saw again for a job
}

func newOfflineCentral(b *testing.B, url string) *offlineCentral {
	b.Helper()
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	c := &offlineCentral{pub: filepath.Join(b.TempDir(), "dispatcher.pub"), stored: map[string]int{}, results: map[string]*api.Result{}}
	if err := os.WriteFile(c.pub, pub, 0o644); err != nil {
		b.Fatal(err)
	}
	if c.signer, err = api.NewSigner(key); err != nil {
		b.Fatal(err)
	}
	c.d, err = transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{url}, ClientID: "offline-central-" + strconv.Itoa(rand.IntN(1e6)),
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
			case api.ReceiptRefused:
				c.refused++
				c.example = fmt.Sprintf("%s: %s %s", r.JobID, r.Reason, r.Detail)
			}
		},
		OnSync: func(context.Context, *api.Sync) {
			c.mu.Lock()
			c.syncs++
			c.mu.Unlock()
		},
		OnResult: func(_ context.Context, r *api.Result) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.results[r.JobID] != nil {
				c.repeated++
				return nil
			}
			c.results[r.JobID] = r
			return nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.d.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	return c
}

// counts returns the distinct jobs with a stored receipt, the most stored
// receipts one job had, and the duplicate receipts.
func (c *offlineCentral) counts() (stored, most, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.stored {
		most = max(most, n)
	}
	return len(c.stored), most, c.dups
}

func (c *offlineCentral) refusals() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused, c.example
}

func (c *offlineCentral) syncCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs
}

func (c *offlineCentral) resultCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.results)
}

// checkIntake fails unless every job sent, and nothing else, has exactly
// one stored receipt, and tekend counts each accepted once.
func (c *offlineCentral) checkIntake(b *testing.B, d *signingTekend, sent map[string]bool) {
	b.Helper()
	stored, most, dups := c.counts()
	refused, example := c.refusals()
	c.mu.Lock()
	var stranger string
	for id := range c.stored {
		if !sent[id] {
			stranger = id
			break
		}
	}
	c.mu.Unlock()
	accepted, err := d.metric("teken_jobs_received_total", `result="accepted"`)
	if err != nil {
		b.Fatal(err)
	}
	refusedMetric, _ := d.metric("teken_jobs_received_total", `result="refused"`)     // absent: none
	duplicateMetric, _ := d.metric("teken_jobs_received_total", `result="duplicate"`) // absent: none
	n := len(sent)
	if stored != n || most != 1 || dups != 0 || refused != 0 || stranger != "" ||
		int(accepted) != n || refusedMetric != 0 || duplicateMetric != 0 {
		b.Fatalf("%d of %d jobs with a stored receipt (most for one job %d, %d duplicate receipts, %d refused %s, unknown %q); tekend accepted %v, refused %v, duplicates %v\n%s",
			stored, n, most, dups, refused, example, stranger, accepted, refusedMetric, duplicateMetric, tail(d.logPath))
	}
}

// checkResults fails unless the central side holds exactly one signed
// result for each letter signed, by the official, and none other.
func (c *offlineCentral) checkResults(b *testing.B, chosen []string, o *tekentest.Official) {
	b.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.results) != len(chosen) || c.repeated != 0 {
		b.Fatalf("%d results (%d seen again) at the central side, want %d", len(c.results), c.repeated, len(chosen))
	}
	for _, id := range chosen {
		r := c.results[id]
		switch {
		case r == nil:
			b.Fatalf("no result for signed letter %s", id)
		case r.Outcome != api.OutcomeSigned:
			b.Fatalf("letter %s ended %s (%s %s), want signed", id, r.Outcome, r.Reason, r.Detail)
		case !bytes.Equal(r.SignerCert, o.Cert.Raw) || len(r.Documents) != 1:
			b.Fatalf("letter %s: signed result with %d documents, by another certificate or none", id, len(r.Documents))
		}
	}
}
