package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// The intake of a real tekend against the raw rate of the same broker, in
// one run:
//
//	go test -run '^$' -bench BenchmarkIntakeEndToEnd -benchtime 1x ./internal/soak/
//
// raw: `mosquitto_pub -q 1 -l` publishing intakeJobs lines to a paho QoS 1
// subscriber with a persistent session (as tekend's), timed from the start
// of mosquitto_pub until the subscriber has every line. intake: the same
// number of distinct signed job envelopes of 1–2 KB, one a line, published
// the same way to a tekend process's jobs topic, timed until the central
// side has a stored receipt for every one. Each size runs with an ES256
// and with an EdDSA dispatcher key (alg=…/jobs=…); jobs=2000 is the quick
// one for development; TEKEN_INTAKE_JOBS overrides both sizes.
const intakeJobs = 10000

const intakeTerminal = "intake-setda-01"

func BenchmarkIntakeEndToEnd(b *testing.B) {
	testenv.LookPath(b, "mosquitto_pub")
	bin := tekendBinary(b, b.TempDir())
	sizes := []int{intakeJobs, 2000}
	if s := os.Getenv("TEKEN_INTAKE_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("TEKEN_INTAKE_JOBS=%q: want a positive number", s)
		}
		sizes = []int{n}
	}
	// Both algorithms the contract allows for the dispatcher key:
	// verifying an ES256 signature costs tekend about three times an
	// EdDSA one, and verification is most of its CPU per job.
	for _, alg := range []string{api.AlgES256, api.AlgEdDSA} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("alg=%s/jobs=%d", alg, n), func(b *testing.B) {
				for range b.N {
					runIntake(b, bin, alg, n)
				}
			})
		}
	}
}

func runIntake(b *testing.B, bin, alg string, n int) {
	broker := testenv.StartMosquitto(b)
	dir := b.TempDir()
	c := newCentralSigning(b, broker.URL, alg)

	// The job lines first: signing is the central side's cost, not
	// tekend's, and the raw baseline replays lines of the same sizes.
	jobsFile := filepath.Join(dir, "jobs")
	lines := intakeEnvelopes(b, c.signer, n)
	if err := os.WriteFile(jobsFile, lines, 0o600); err != nil {
		b.Fatal(err)
	}

	raw := rawRate(b, broker.URL, broker.Port, jobsFile, n)

	d := newTekend(b, bin, intakeTerminal, broker.URL, c.pub)
	d.start()
	// Its connect Sync says the subscriptions are in place.
	if err := testenv.WaitFor(context.Background(), 2*time.Minute, func() error {
		if c.syncCount() == 0 {
			return fmt.Errorf("no sync from tekend yet\n%s", tail(d.logPath))
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	pid := d.pid()
	cpu0, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	pub := mosquittoPub(b, broker.Port, api.Topic(api.DefaultRoot, intakeTerminal, api.KindJobs), jobsFile)
	if out, err := pub.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	if err := testenv.WaitFor(context.Background(), 10*time.Minute, func() error {
		if got, _, _ := c.counts(); got < n {
			return fmt.Errorf("%d of %d stored receipts", got, n)
		}
		return nil
	}); err != nil {
		b.Fatalf("%v\ntekend log:\n%s", err, tail(d.logPath))
	}
	elapsed := time.Since(start)
	cpu1, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	hwm, err := procStatusKB(pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}

	stored, most, dups := c.counts()
	accepted, _ := d.metric("teken_jobs_received_total", `result="accepted"`)
	refused, _ := d.metric("teken_jobs_received_total", `result="refused"`) // absent: none
	duplicate, _ := d.metric("teken_jobs_received_total", `result="duplicate"`)
	if stored != n || most != 1 || dups != 0 || int(accepted) != n || refused != 0 || duplicate != 0 {
		b.Fatalf("%d of %d jobs with a stored receipt (most for one job %d, %d duplicate receipts); tekend accepted %v, refused %v, duplicates %v\n%s",
			stored, n, most, dups, accepted, refused, duplicate, tail(d.logPath))
	}
	d.stop()

	intake := float64(n) / elapsed.Seconds()
	b.ReportMetric(raw, "raw_msgs/s")
	b.ReportMetric(intake, "intake_jobs/s")
	b.ReportMetric(intake/raw, "ratio")
	b.ReportMetric((cpu1-cpu0).Seconds()*1000/float64(n), "tekend_cpu_ms/job")
	b.ReportMetric(float64(hwm)/(1<<20), "tekend_rss_MB")
}

// intakeEnvelopes signs n distinct jobs for intakeTerminal, each envelope
// 1–2 KB and one line, and returns them newline-terminated.
func intakeEnvelopes(b *testing.B, s *api.Signer, n int) []byte {
	b.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	var out bytes.Buffer
	for i := range n {
		// Text of 150–550 bytes: base64 in the JSON, base64url again in
		// the JWS, puts the envelope between 1 and 2 KB.
		body := strings.Repeat("x", 150+rand.IntN(400))
		doc := api.NewDocument("surat", "surat.txt", "text/plain", fmt.Appendf(nil, "isi surat %d %s", i+1, body))
		j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: intakeTerminal, IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
			Signer: api.Signatory{CertSHA256: hex.EncodeToString(make([]byte, 32)), Name: "Kepala Bagian Umum"},
			Title:  fmt.Sprintf("Surat uji %d", i+1), Number: fmt.Sprintf("005/%d/SETDA", i+1), Sender: "Sekretariat Daerah",
			Documents: []api.Document{doc}}
		env, err := s.SignJob(j)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.ContainsAny(env, "\r\n") {
			b.Fatalf("job %d: the envelope is not one line", i+1)
		}
		if len(env) < 1<<10 || len(env) > 2<<10 {
			b.Fatalf("job %d: envelope of %d bytes, want 1–2 KB", i+1, len(env))
		}
		out.Write(env)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// rawRate publishes the n lines of file with mosquitto_pub to a
// mosquitto_sub QoS 1 subscriber and returns the messages per second from
// the start of mosquitto_pub until the subscriber had them all. A probe
// message, sent until the subscriber prints it, says it is subscribed.
func rawRate(b *testing.B, url string, port int, file string, n int) float64 {
	b.Helper()
	_ = url
	topic := "intake-raw/" + strconv.Itoa(rand.IntN(1e6))
	sub := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-t", topic)
	out, err := sub.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		b.Fatalf("mosquitto_sub: %v", err)
	}
	defer func() { _ = sub.Process.Kill(); _ = sub.Wait() }()
	lines := make(chan struct{}, n+1024)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			lines <- struct{}{}
		}
		close(lines)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	probe := func() error {
		if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-t", topic, "-m", "probe").CombinedOutput(); err != nil {
			return fmt.Errorf("probe: %v: %s", err, out)
		}
		select {
		case <-lines:
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("the raw subscriber has not printed the probe")
		}
	}
	if err := testenv.WaitFor(ctx, time.Minute, probe); err != nil {
		b.Fatal(err)
	}
	for len(lines) > 0 { // later probes
		<-lines
	}
	start := time.Now()
	if out, err := mosquittoPub(b, port, topic, file).CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	for got := 0; got < n; got++ {
		select {
		case _, ok := <-lines:
			if !ok {
				b.Fatalf("mosquitto_sub ended after %d of %d messages", got, n)
			}
		case <-ctx.Done():
			b.Fatalf("raw subscriber has %d of %d messages", got, n)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// mosquittoPub publishes each line of file as one QoS 1 message: -l reads
// its lines from standard input (-f would send the file as one message).
func mosquittoPub(b *testing.B, port int, topic, file string) *exec.Cmd {
	b.Helper()
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-l", "-t", topic)
	cmd.Stdin = f
	return cmd
}

// procCPU is the user and system CPU time of a process so far
// (/proc/PID/stat utime and stime, in clock ticks of 1/100 s, the USER_HZ
// every Linux exports).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
