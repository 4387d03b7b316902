package daemon_test

import (
	"io"
	"net/http"

	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"flag"
	"golang.org/x/crypto/bcrypt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// volatile metrics depend on timing, the clock or the runtime: the golden
// file keeps their names and labels, not their values. Duplicates are among
// them: the central side may publish a job again when a Sync crosses it,
// which at-least-once delivery allows.
var volatile = regexp.MustCompile(`^teken_(jobs_received_total\{reason="",result="duplicate"\}|job_wait_seconds|card_sign_seconds|sign_batch_seconds|token_busy_seconds_total|` +
	`last_result_delivery_timestamp_seconds|signer_certificate_\w+_timestamp_seconds|jobs_oldest_waiting_age_seconds|` +
	`results_oldest_undelivered_age_seconds|store_size_bytes|build_info)`)

// normalise keeps the teken_ metrics of an exposition, values of volatile
// ones replaced, histogram buckets of volatile histograms dropped.
func normalise(exposition []byte) string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "teken_") || strings.HasPrefix(name, "teken_process_") {
			continue
		}
		if strings.HasPrefix(line, "#") {
			out = append(out, line)
			continue
		}
		if volatile.MatchString(line) {
			if strings.Contains(line, "_bucket{") {
				continue
			}
			if strings.Contains(line, "_count ") {
				out = append(out, line) // how many were observed is not volatile
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			line = line[:i] + " <volatile>"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

// The whole /metrics output after a scripted flow: one job signed, one
// rejected, one refused (forged), one duplicate, one still waiting, a wrong
// PIN, and the token still present.
func TestMetricsGolden(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 6001)
	j1 := tm.Dispatch(siti, "Surat Satu", "001/1")
	j2 := tm.Dispatch(siti, "Surat Dua", "001/2")
	tm.Dispatch(siti, "Surat Tiga", "001/3")
	ctx := context.Background()
	dup := *j1
	if err := tm.Central.Publish(ctx, &dup); err != nil {
		t.Fatal(err)
	}
	tm.AwaitReceipt(j1.JobID, api.ReceiptDuplicate)
	forgeJob(t, tm)

	k := tm.Kiosk()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("three letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 3 })
	if code, _ := k.Sign([]string{j1.JobID}, "000000"); code != 409 {
		t.Fatalf("wrong PIN accepted: %d", code)
	}
	if code, out := k.Sign([]string{j1.JobID}, "123456"); code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	k.Post("/api/dismiss", map[string]any{})
	if code, out := k.Post("/api/reject", map[string]any{"job_id": j2.JobID, "reason": "salah alamat"}); code != 200 {
		t.Fatalf("reject: %d %v", code, out)
	}
	for range 2 {
		<-tm.Results
	}
	// Wait until both results are acknowledged and the broker link is up.
	var body []byte
	err := testenv.WaitFor(ctx, 20*time.Second, func() error {
		body = get(t, tm.MetricsURL+"/metrics")
		if !bytes.Contains(body, []byte("teken_results_undelivered 0\n")) || !bytes.Contains(body, []byte("teken_broker_connected 1\n")) {
			return errString("results not yet acknowledged")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}

	got := normalise(body)
	golden := filepath.Join("testdata", "metrics", "after-flow.golden")
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("/metrics differs from %s (run with -update after checking):\n%s", golden, diffLines(string(want), got))
	}

	promtool := testenv.LookPath(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// No job id and no person ever becomes a label.
	for _, secret := range []string{j1.JobID, j2.JobID, siti.Hash, "Siti"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("/metrics mentions %q", secret)
		}
	}
}

// forgeJob publishes a job signed by a key the terminal does not trust.
func forgeJob(t *testing.T, tm *tekentest.Terminal) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{tm.Broker.URL}, ClientID: "forger"},
		Signer:     signer,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := forger.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: tm.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Signer: api.Signatory{CertSHA256: strings.Repeat("ab", 32)}, Title: "Palsu", Number: "0", Sender: "x",
		Documents: []api.Document{api.NewDocument("d", "d.pdf", "application/pdf", []byte("%PDF-1.4 forged"))}}
	if err := forger.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	tm.AwaitReceipt(j.JobID, api.ReceiptRefused)
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	seen := map[string]bool{}
	for _, l := range w {
		seen[l] = true
	}
	for _, l := range g {
		if !seen[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	seen = map[string]bool{}
	for _, l := range g {
		seen[l] = true
	}
	for _, l := range w {
		if !seen[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// IT's endpoints honour the exporter-toolkit web configuration: with basic
// auth configured, /metrics needs the password.
func TestMetricsBasicAuth(t *testing.T) {
	hash, err := bcryptHash("rahasia-it")
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  prometheus: "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := tekentest.Start(t, nil, func(c *daemon.Config) { c.Metrics.WebConfig = webConfig })
	res, err := http.Get(tm.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without a password: %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, tm.MetricsURL+"/metrics", nil)
	req.SetBasicAuth("prometheus", "rahasia-it")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("teken_build_info")) {
		t.Fatalf("/metrics with the password: %d", res.StatusCode)
	}
}

func bcryptHash(pw string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	return string(b), err
}
