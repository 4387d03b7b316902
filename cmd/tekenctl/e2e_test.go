package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/testenv"
)

const terminalID = "kendari-setda-01"

// TestWholeFlow runs every subcommand against a real broker and a real
// tekend with a software token: keygen → tekend trusts the key → dispatch
// --wait while the official signs on the kiosk → results --out → verify →
// fleet → audit on the live database and on a copy.
func TestWholeFlow(t *testing.T) {
	pcscd := testenv.StartPCSCD(t)
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	// token sim makes the software token and keeps it on the reader.
	state := filepath.Join(dir, "token")
	tokenOut := &buffer{}
	stdin, stdinW := io.Pipe()
	tokenCtx, stopToken := context.WithCancel(ctx)
	tokenDone := make(chan int, 1)
	go func() {
		tokenDone <- run(tokenCtx, env{stdin: stdin, stdout: tokenOut, stderr: tokenOut, getenv: func(string) string { return "" }},
			[]string{"token", "sim", "--state", state, "--name", "Siti Rahmawati, S.Sos.", "--nip", "198703152010012003",
				"--reader-addr", pcscd.VPCDAddr(0)})
	}()
	t.Cleanup(func() {
		stopToken()
		stdinW.Close()
		if code := <-tokenDone; code != exitOK {
			t.Errorf("token sim exited %d:\n%s", code, tokenOut.String())
		}
	})
	if err := testenv.WaitFor(ctx, 20*time.Second, func() error {
		if !strings.Contains(tokenOut.String(), "Token on the reader") {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatalf("token sim never inserted the token:\n%s", tokenOut.String())
	}
	certPath, caPath := filepath.Join(state, "signer.pem"), filepath.Join(state, "demo-ca.pem")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(blk.Bytes)
	for _, want := range []string{"vpcd " + pcscd.VPCDAddr(0), hex.EncodeToString(sum[:]), certPath, caPath} {
		if !strings.Contains(tokenOut.String(), want) {
			t.Errorf("token sim output lacks %q:\n%s", want, tokenOut.String())
		}
	}

	// keygen: the key the terminal will trust.
	prefix := filepath.Join(dir, "central", "dispatcher")
	if err := os.Mkdir(filepath.Dir(prefix), 0o700); err != nil { // keygen creates no directories
		t.Fatal(err)
	}
	kg := tekenctl(t, ctx, nil, "keygen", "--out", prefix)
	if kg.code != exitOK {
		t.Fatalf("keygen exited %d: %s", kg.code, kg.stderr)
	}
	checkKeyPair(t, prefix, strings.TrimSpace(kg.stdout))
	if again := tekenctl(t, ctx, nil, "keygen", "--out", prefix); again.code != exitFailure || !strings.Contains(again.stderr, "exists") {
		t.Errorf("keygen over an existing key: %+v", again)
	}
	if bad := tekenctl(t, ctx, nil, "keygen", "--alg", "RSA", "--out", filepath.Join(dir, "x")); bad.code != exitUsage {
		t.Errorf("keygen --alg RSA exited %d", bad.code)
	}
	if bad := tekenctl(t, ctx, nil, "keygen"); bad.code != exitUsage {
		t.Errorf("keygen without --out exited %d", bad.code)
	}

	cfg := daemon.DefaultConfig()
	cfg.TerminalID = terminalID
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Broker.URLs = []string{broker.URL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{prefix + ".pub"}
	cfg.Kiosk.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Status.MinInterval = daemon.Duration(time.Second)
	cfg.Token.RefuseDefaultPIN = false // the software tokens keep the factory PIN 123456
	cfg.Signing.SignerCAFiles = []string{caPath}
	kioskURL, stopTekend := startTekend(t, cfg)

	// Settings from the environment, as an integrator's shell has them.
	vars := map[string]string{"TEKEN_BROKER": broker.URL, "TEKEN_DISPATCHER_KEY": prefix + ".key"}

	// The first results run makes the broker keep the session, so the
	// result of the job below waits for the next run.
	if r := tekenctl(t, ctx, vars, "results", "--timeout", "100ms"); r.code != exitOK || !strings.Contains(r.stderr, "no results") {
		t.Fatalf("first results run: %+v", r)
	}

	letter := filepath.Join(dir, "surat.pdf")
	if err := os.WriteFile(letter, []byte("%PDF-1.4\n% Undangan Rapat Koordinasi\n%%EOF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kiosk := openKiosk(t, kioskURL)
	signed := make(chan error, 1)
	go func() { signed <- kiosk.signAll(1, pivsim.DefaultPIN) }()
	d := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath,
		"--title", "Undangan Rapat Koordinasi", "--number", "005/123/SETDA/XI/2026", "--wait", letter)
	if err := <-signed; err != nil {
		t.Fatalf("signing on the kiosk: %v", err)
	}
	// The receipt first, then the outcome.
	m := regexp.MustCompile(`^([0-9a-f-]{36}) stored\n([0-9a-f-]{36}) signed\n$`).FindStringSubmatch(d.stdout)
	if d.code != exitOK || m == nil || m[1] != m[2] {
		t.Fatalf("dispatch --wait: %+v", d)
	}
	jobID := m[1]

	// A job signed with a key the terminal does not trust is refused.
	other := filepath.Join(dir, "untrusted")
	tekenctl(t, ctx, nil, "keygen", "--alg", "Ed25519", "--out", other)
	refused := tekenctl(t, ctx, map[string]string{"TEKEN_BROKER": broker.URL, "TEKEN_DISPATCHER_KEY": other + ".key"},
		"dispatch", "--terminal", terminalID, "--signer", certPath, letter)
	if refused.code != exitFailure || !strings.Contains(refused.stdout, "refused unknown_kid") || strings.Count(refused.stderr, "\n") != 1 {
		t.Errorf("dispatch with an untrusted key: %+v", refused)
	}
	// A job over the terminal's size limit is refused before it is parsed:
	// the receipt names only the envelope's hash.
	big := filepath.Join(dir, "big.pdf")
	if err := os.WriteFile(big, make([]byte, api.DefaultMaxContentBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if tl := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, big); tl.code != exitFailure || !strings.Contains(tl.stdout, "refused too_large") {
		t.Errorf("dispatch of a too large job: %+v", tl)
	}
	if u := tekenctl(t, ctx, vars, "dispatch", "--signer", certPath, letter); u.code != exitUsage {
		t.Errorf("dispatch without --terminal exited %d", u.code)
	}

	// results --out takes the result kept for the session.
	out := filepath.Join(dir, "signed")
	r := tekenctl(t, ctx, vars, "results", "--out", out, "--timeout", "2s")
	if r.code != exitOK || !strings.Contains(r.stdout, jobID) || !strings.Contains(r.stdout, "signed") {
		t.Fatalf("results --out: %+v", r)
	}
	resultFile, sigFile := filepath.Join(out, jobID+".json"), filepath.Join(out, jobID+"-surat.pdf.p7s")
	for _, f := range []string{resultFile, sigFile} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("results --out: %v", err)
		}
	}

	// verify: the result and the bare .p7s, a changed document, usage.
	ca := map[string]string{"TEKEN_CA": caPath}
	v := tekenctl(t, ctx, ca, "verify", resultFile, letter)
	if v.code != exitOK || !strings.Contains(v.stdout, "VALID") || !strings.Contains(v.stdout, "Siti Rahmawati, S.Sos. (NIP 198703152010012003)") {
		t.Errorf("verify result: %+v", v)
	}
	if v := tekenctl(t, ctx, nil, "verify", "--ca", caPath, "--sig", sigFile, letter); v.code != exitOK || !strings.Contains(v.stdout, "signed:") || !strings.Contains(v.stdout, "  integrity:  VALID ") {
		t.Errorf("verify --sig: %+v", v)
	}
	forged := filepath.Join(dir, "forged.pdf")
	if err := os.WriteFile(forged, []byte("%PDF-1.4\n% Undangan Rapat Koordinasi!\n%%EOF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := tekenctl(t, ctx, ca, "verify", "--sig", sigFile, forged); v.code != exitFailure || !strings.Contains(v.stdout, "INVALID") {
		t.Errorf("verify of a changed document: %+v", v)
	}
	if v := tekenctl(t, ctx, ca, "verify", resultFile, forged); v.code != exitFailure || !strings.Contains(v.stdout, "no signature") {
		t.Errorf("verify result against another document: %+v", v)
	}
	if v := tekenctl(t, ctx, ca, "verify", resultFile); v.code != exitUsage {
		t.Errorf("verify without a document exited %d", v.code)
	}
	if v := tekenctl(t, ctx, nil, "verify", resultFile, letter); v.code != exitUsage {
		t.Errorf("verify without a CA exited %d", v.code)
	}

	padesFlow(t, ctx, vars, kiosk, signed, certPath, caPath, dir)

	// results --follow --json while a raw-format job is signed.
	followOut := &buffer{}
	followCtx, stopFollow := context.WithCancel(ctx)
	followDone := make(chan int, 1)
	go func() {
		followDone <- run(followCtx, env{stdin: strings.NewReader(""), stdout: followOut, stderr: followOut, getenv: func(k string) string { return vars[k] }},
			[]string{"results", "--follow", "--json", "--client-id", "follow-test", "--out", out})
	}()
	go func() { signed <- kiosk.signAll(1, pivsim.DefaultPIN) }()
	raw := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--format", "raw", "--wait", letter)
	if err := <-signed; err != nil || raw.code != exitOK {
		t.Fatalf("raw dispatch: %v %+v", err, raw)
	}
	rawID := strings.Fields(raw.stdout)[0]
	var got api.Result
	if err := testenv.WaitFor(ctx, 20*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(followOut.String()))
		for sc.Scan() {
			if json.Unmarshal(sc.Bytes(), &got) == nil && got.JobID == rawID {
				return nil
			}
		}
		return context.DeadlineExceeded
	}); err != nil {
		t.Fatalf("results --follow printed no line for %s:\n%s", rawID, followOut.String())
	}
	stopFollow()
	if code := <-followDone; code != exitOK {
		t.Errorf("results --follow exited %d", code)
	}
	if got.Outcome != api.OutcomeSigned || len(got.Documents) != 1 || got.Documents[0].Format != api.FormatRaw {
		t.Errorf("followed result %+v", got)
	}
	if v := tekenctl(t, ctx, ca, "verify", filepath.Join(out, rawID+".json"), letter); v.code != exitOK || !strings.Contains(v.stdout, "(raw, document surat.pdf)\n  verdict: VALID\n") {
		t.Errorf("verify raw result: %+v", v)
	}

	// fleet shows the terminal online with its token.
	f := tekenctl(t, ctx, vars, "fleet", "--json")
	var fleet []api.Status
	if err := json.Unmarshal([]byte(f.stdout), &fleet); err != nil || f.code != exitOK {
		t.Fatalf("fleet --json: %v %+v", err, f)
	}
	if len(fleet) != 1 || fleet[0].Terminal != terminalID || fleet[0].State != api.StateOnline || !fleet[0].TokenPresent {
		t.Errorf("fleet %+v", fleet)
	}
	if f := tekenctl(t, ctx, vars, "fleet"); f.code != exitOK || !regexp.MustCompile(terminalID+`\s+online`).MatchString(f.stdout) {
		t.Errorf("fleet table: %+v", f)
	}

	// A job over the broker's size limit is refused before publishing.
	if tl := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--max-message-bytes", "1000", letter); tl.code != exitFailure || !strings.Contains(tl.stderr, "over the broker's message size limit of 1000 bytes") {
		t.Errorf("dispatch over --max-message-bytes: %+v", tl)
	}
	// A central side that lost its session gets a result back with
	// --resync: signed while no session of this client id existed.
	go func() { signed <- kiosk.signAll(1, pivsim.DefaultPIN) }()
	lost := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, letter)
	if err := <-signed; err != nil || lost.code != exitOK {
		t.Fatalf("dispatch for the resync: %v %+v", err, lost)
	}
	lostID := strings.Fields(lost.stdout)[0]
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		rs := tekenctl(t, ctx, vars, "results", "--client-id", "restored-"+lostID[:8], "--resync", terminalID, "--timeout", "2s")
		if rs.code != exitOK || !strings.Contains(rs.stderr, "sync requested from "+terminalID) {
			t.Fatalf("results --resync: %+v", rs)
		}
		if !strings.Contains(rs.stdout, lostID) {
			return fmt.Errorf("results --resync did not bring %s back: %+v", lostID, rs)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// fleet --watch redraws until stopped.
	watchOut := &buffer{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan int, 1)
	go func() {
		watchDone <- run(watchCtx, env{stdin: strings.NewReader(""), stdout: watchOut, stderr: watchOut, getenv: func(k string) string { return vars[k] }},
			[]string{"fleet", "--watch", "1", "--quiet", "100ms"})
	}()
	err = testenv.WaitFor(ctx, 10*time.Second, func() error {
		if strings.Count(watchOut.String(), "TERMINAL") < 2 {
			return context.DeadlineExceeded
		}
		return nil
	})
	stopWatch()
	if code := <-watchDone; err != nil || code != exitOK {
		t.Errorf("fleet --watch drew %d times, exit %d:\n%s", strings.Count(watchOut.String(), "TERMINAL"), code, watchOut.String())
	}

	// Enter on token sim removes the token, Enter again taps it.
	for _, want := range []string{"Token removed.", "Token on the reader.\n"} {
		if _, err := stdinW.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
		if err := testenv.WaitFor(ctx, 10*time.Second, func() error {
			if !strings.HasSuffix(tokenOut.String(), want+"\n") && !strings.HasSuffix(tokenOut.String(), want) {
				return context.DeadlineExceeded
			}
			return nil
		}); err != nil {
			t.Fatalf("token sim after Enter: want %q:\n%s", want, tokenOut.String())
		}
	}

	// audit on the live database names the lock and the way out.
	db := daemon.StorePath(cfg.DataDir)
	if a := tekenctl(t, ctx, nil, "audit", "verify", "--db", db, "--timeout", "200ms"); a.code != exitFailure || !strings.Contains(a.stderr, "running tekend") || !strings.Contains(a.stderr, "copy") {
		t.Errorf("audit on a live database: %+v", a)
	}
	// An open event stream holds tekend's HTTP shutdown until its
	// deadline, so the page goes first, as at the end of a day.
	kiosk.Close()
	start := time.Now()
	stopTekend()
	t.Logf("tekend stopped in %s", time.Since(start).Round(time.Millisecond))
	// After tekend stopped, the terminal shows offline (its own
	// retained status on a clean shutdown).
	if err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		f := tekenctl(t, ctx, vars, "fleet", "--json", "--quiet", "100ms")
		if !strings.Contains(f.stdout, `"offline"`) {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Errorf("fleet never showed the stopped terminal offline")
	}
	auditCopy(t, ctx, db, filepath.Join(dir, "copy.db"))
}

func auditCopy(t *testing.T, ctx context.Context, db, copyPath string) {
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a := tekenctl(t, ctx, nil, "audit", "verify", "--db", copyPath)
	n := regexp.MustCompile(`^OK: (\d+) entries`).FindStringSubmatch(a.stdout)
	if a.code != exitOK || n == nil {
		t.Fatalf("audit verify: %+v", a)
	}
	x := tekenctl(t, ctx, nil, "audit", "export", "--db", copyPath)
	lines := strings.Split(strings.TrimSpace(x.stdout), "\n")
	if x.code != exitOK || len(lines) < 2 || n[1] != strconv.Itoa(len(lines)) {
		t.Fatalf("audit export: %d lines, verify counted %s: %+v", len(lines), n[1], x)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("audit export line is not JSON: %s", l)
		}
	}

	// A changed prev hash in the first entry breaks the chain right there.
	b, err := bolt.Open(copyPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("audit"))
		k, v := bk.Cursor().First()
		v = append([]byte(nil), v...)
		v[len(v)-1] ^= 1
		return bk.Put(k, v)
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	a = tekenctl(t, ctx, nil, "audit", "verify", "--db", copyPath)
	if a.code != exitFailure || !strings.Contains(a.stdout, "BROKEN at entry 1: prev hash") {
		t.Errorf("audit verify of a changed log: %+v", a)
	}
	if u := tekenctl(t, ctx, nil, "audit", "check", "--db", copyPath); u.code != exitUsage {
		t.Errorf("audit check exited %d", u.code)
	}
}

func checkKeyPair(t *testing.T, prefix, kid string) {
	t.Helper()
	fi, err := os.Stat(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(prefix + ".key")
	key, err := api.ParsePrivateKeyPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	pubRaw, _ := os.ReadFile(prefix + ".pub")
	pub, err := api.ParsePublicKeyPEM(pubRaw)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := api.KeyID(key.Public())
	got, _ := api.KeyID(pub)
	if kid != want || got != want {
		t.Errorf("kid printed %q, of the key %q, of the public key %q", kid, want, got)
	}
}

// padesFlow dispatches a pades job with a placed block and a QR link, has
// it signed, saves it with results --out as JOBID-DOCID.pdf and verifies
// it with tekenctl verify and poppler's pdfsig: valid as saved, invalid
// once a byte changed, indeterminate against another CA.
func padesFlow(t *testing.T, ctx context.Context, vars map[string]string, kiosk *official, signed chan error, certPath, caPath, dir string) {
	t.Helper()
	letter := filepath.Join(dir, "undangan.pdf")
	original := demo.LetterPDF("Sekretariat Daerah", "005/124/SETDA/XI/2026", "Undangan Rapat", "Rapat koordinasi pada Senin, 7 Desember 2026.")
	if err := os.WriteFile(letter, original, 0o644); err != nil {
		t.Fatal(err)
	}
	if u := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--page", "1", letter); u.code != exitUsage {
		t.Errorf("--page without --format pades exited %d", u.code)
	}
	if u := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--format", "pades", "--page", "3", letter); u.code != exitFailure || !strings.Contains(u.stderr, "no such page") {
		t.Errorf("a block on page 3 of 1: %+v", u)
	}
	go func() { signed <- kiosk.signAll(1, pivsim.DefaultPIN) }()
	d := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--format", "pades",
		"--page", "1", "--rect", "340,40,220,80", "--verify-url", "https://tte.example.go.id/v/005-124", "--wait", letter)
	if err := <-signed; err != nil {
		t.Fatalf("signing on the kiosk: %v", err)
	}
	m := regexp.MustCompile(`^(\S+) stored\n(\S+) signed\n$`).FindStringSubmatch(d.stdout)
	if d.code != exitOK || m == nil || m[1] != m[2] {
		t.Fatalf("dispatch --format pades --wait: %+v", d)
	}
	out := filepath.Join(dir, "signed")
	if r := tekenctl(t, ctx, vars, "results", "--out", out, "--timeout", "2s"); r.code != exitOK || !strings.Contains(r.stdout, m[1]) {
		t.Fatalf("results --out: %+v", r)
	}
	pdf := filepath.Join(out, m[1]+"-undangan.pdf")
	got, err := os.ReadFile(pdf)
	if err != nil {
		t.Fatalf("results --out did not write JOBID-DOCID.pdf: %v", err)
	}
	if !bytes.HasPrefix(got, original) || !regexp.MustCompile(`/Rect \[340 40 560 120\]`).Match(got) {
		t.Errorf("the signed PDF does not keep the letter or the block's place")
	}

	v := tekenctl(t, ctx, nil, "verify", "--ca", caPath, pdf)
	for _, want := range []string{"verdict: VALID", "signature 1, field Signature1: VALID", "Siti Rahmawati, S.Sos. (NIP 198703152010012003)", "level:     B-B", "the whole file",
		"      integrity:  VALID ", "      chain:      VALID ", "      revocation: VALID not published", "      timestamp:  VALID none", "      level:      B-B\n"} {
		if v.code != exitOK || !strings.Contains(v.stdout, want) {
			t.Errorf("verify of the signed PDF lacks %q: %+v", want, v)
		}
	}
	j := tekenctl(t, ctx, nil, "verify", "--ca", caPath, "--json", pdf)
	var verdict ctl.Verdict
	if err := json.Unmarshal([]byte(j.stdout), &verdict); err != nil || j.code != exitOK {
		t.Fatalf("verify --json: %v %+v", err, j)
	}
	if s := verdict.Signatures; verdict.Status != ctl.StatusValid || len(s) != 1 || s[0].NIP != "198703152010012003" || s[0].Level != "B-B" ||
		s[0].SigningTime == nil || s[0].CoversWholeFile == nil || !*s[0].CoversWholeFile || len(s[0].Checks) != 5 || s[0].Checks[0].Name != "integrity" {
		t.Errorf("verify --json: %+v", verdict)
	}
	if v := tekenctl(t, ctx, nil, "verify", "--ca", caPath, filepath.Join(out, m[1]+".json"), letter); v.code != exitOK || !strings.Contains(v.stdout, "verdict: VALID") {
		t.Errorf("verify of the pades result against the letter: %+v", v)
	}

	tampered := filepath.Join(dir, "tampered.pdf")
	changed := bytes.Clone(got)
	i := bytes.Index(changed, []byte("7 Desember"))
	changed[i] = '8'
	if err := os.WriteFile(tampered, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := tekenctl(t, ctx, nil, "verify", "--ca", caPath, tampered); v.code != exitFailure || !strings.Contains(v.stdout, "INVALID: cms: message digest does not match") {
		t.Errorf("verify of a changed PDF: %+v", v)
	}
	other := testenv.NewCA(t, "Another Provincial CA").CertFile
	if v := tekenctl(t, ctx, nil, "verify", "--ca", other, pdf); v.code != exitFailure || !strings.Contains(v.stdout, "INDETERMINATE: unknown CA") ||
		!strings.Contains(v.stdout, "verdict: INDETERMINATE") || !strings.Contains(v.stdout, "chain:      INDETERMINATE: unknown CA") {
		t.Errorf("verify against another CA: %+v", v)
	}

	// poppler agrees.
	report := pdfsig(t, caPath, pdf)
	for _, want := range []string{"Signature Validation: Signature is Valid.", "Certificate Validation: Certificate is Trusted.", "Total document signed", "Signer Certificate Common Name: Siti Rahmawati, S.Sos."} {
		if !strings.Contains(report, want) {
			t.Errorf("pdfsig report lacks %q:\n%s", want, report)
		}
	}
	if report := pdfsig(t, caPath, tampered); strings.Contains(report, "Signature is Valid.") {
		t.Errorf("pdfsig calls the changed PDF valid:\n%s", report)
	}
}

// pdfsig runs poppler's verifier with an NSS database that trusts ca.
func pdfsig(t *testing.T, ca, pdf string) string {
	t.Helper()
	certutil, tool := testenv.LookPath(t, "certutil"), testenv.LookPath(t, "pdfsig")
	nss := t.TempDir()
	for _, args := range [][]string{{"-N", "-d", "sql:" + nss, "--empty-password"}, {"-A", "-d", "sql:" + nss, "-n", "ca", "-t", "CT,C,C", "-i", ca}} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", args[0], err, out)
		}
	}
	out, _ := exec.Command(tool, "-nssdir", "sql:"+nss, pdf).CombinedOutput()
	return string(out)
}
