package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/testenv"
)

const (
	enrolNIP  = "198703152010012003"
	enrolName = "Siti Rahmawati, S.Sos."
)

// factoryToken puts a token fresh from the factory into the first reader of
// a private pcscd and waits until tekenctl reads it.
func factoryToken(t *testing.T, ctx context.Context, pcscd *testenv.PCSCD, serial uint32) (*pivsim.Card, string) {
	t.Helper()
	return factoryTokenOf(t, ctx, pcscd, pivsim.Config{Serial: serial})
}

// factoryTokenOf is factoryToken for a token of the given configuration
// (firmware version, serial).
func factoryTokenOf(t *testing.T, ctx context.Context, pcscd *testenv.PCSCD, cfg pivsim.Config) (*pivsim.Card, string) {
	t.Helper()
	card, err := pivsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	if err := card.Insert(ctx, pcscd.VPCDAddr(0)); err != nil {
		t.Fatalf("insert: %v\n%s", err, pcscd.Log())
	}
	reader := pcscd.Readers[0]
	if err := testenv.WaitFor(ctx, 20*time.Second, func() error {
		var out, errb buffer
		if run(ctx, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }},
			[]string{"token", "info", "--reader", reader}) != exitOK {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatalf("token never readable in %s", reader)
	}
	return card, reader
}

// secretFile writes a secret file of mode 0600.
func secretFile(t *testing.T, dir, name, v string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA issues certificates for requests, as the province's CA would.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	path string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, path: p}
}

// issue makes a certificate for pub with the subject of csr, adjusted, and
// writes it as PEM.
func (ca *testCA) issue(t *testing.T, dir, name string, csr *x509.CertificateRequest, pub crypto.PublicKey, adjust func(*x509.Certificate)) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: csr.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
	if adjust != nil {
		adjust(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readPEMs(t *testing.T, path, typ string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		var b *pem.Block
		if b, raw = pem.Decode(raw); b == nil {
			return out
		}
		if b.Type != typ {
			t.Fatalf("%s: PEM block %q, want %q", path, b.Type, typ)
		}
		out = append(out, b.Bytes)
	}
}

// TestTokenEnrolAndImportCert enrols a factory token without a terminal,
// has a test CA sign the request, imports the certificate and checks the
// refusals, through the real pcscd and the software token.
func TestTokenEnrolAndImportCert(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	card, reader := factoryToken(t, ctx, testenv.StartPCSCD(t), 5301)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	info := tekenctl(t, ctx, nil, "token", "info", "--reader", reader)
	for _, want := range []string{"serial:          5301", "PIN:             factory default", "management key:  factory default", "no certificate"} {
		if info.code != exitOK || !strings.Contains(info.stdout, want) {
			t.Errorf("token info lacks %q: %+v", want, info)
		}
	}
	profile := filepath.Join(dir, "setda.toml")
	if err := os.WriteFile(profile, []byte("o = \"Pemerintah Provinsi Sulawesi Tenggara\"\nou = \"Sekretariat Daerah\"\nc = \"ID\"\nst = \"Sulawesi Tenggara\"\nl = \"Kendari\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const newPIN, newPUK = "246810", "13572468"
	pinFile := secretFile(t, dir, "pin", newPIN)
	enrolArgs := []string{"token", "enrol", "--reader", reader, "--name", enrolName, "--nip", enrolNIP, "--profile", profile,
		"--out-dir", out, "--new-pin-file", pinFile, "--new-puk-file", secretFile(t, dir, "puk", newPUK)}

	// Refused before the token is touched: a bad NIP, a missing directory,
	// a PIN file others can read, a new PUK that is the factory one.
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(newPIN), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nip", "19870315201001200"}, "18 digits"},
		{[]string{"--nip", "198713152010012003"}, "date of birth"},
		{[]string{"--out-dir", filepath.Join(dir, "none")}, "creates no directories"},
		{[]string{"--new-pin-file", loose}, "chmod 600"},
		{[]string{"--new-puk-file", secretFile(t, dir, "puk0", "12345678")}, "factory default"},
		{[]string{"--new-pin-file", secretFile(t, dir, "short", "123")}, "6 to 8"},
	} {
		c := tekenctl(t, ctx, nil, append(slicesClone(enrolArgs), tc.args...)...)
		if c.code != exitFailure || !strings.Contains(c.stderr, tc.want) {
			t.Errorf("enrol %v: want exit 1 with %q: %+v", tc.args, tc.want, c)
		}
	}
	if got := card.PINRetries(); got != 3 {
		t.Fatalf("refused enrolments cost PIN tries: %d left", got)
	}

	e := tekenctl(t, ctx, nil, enrolArgs...)
	if e.code != exitOK {
		t.Fatalf("enrol: %+v", e)
	}
	for _, s := range []string{newPIN, newPUK} {
		if strings.Contains(e.stdout+e.stderr, s) {
			t.Errorf("enrol printed a secret")
		}
	}
	csrPath, attPath := filepath.Join(out, enrolNIP+"-csr.pem"), filepath.Join(out, enrolNIP+"-attestation.pem")
	for _, want := range []string{"PIN changed", "PUK changed", "management key random", csrPath, attPath, "import-cert"} {
		if !strings.Contains(e.stdout, want) {
			t.Errorf("enrol output lacks %q", want)
		}
	}
	openssl := testenv.LookPath(t, "openssl")
	if b, err := exec.Command(openssl, "req", "-verify", "-noout", "-in", csrPath).CombinedOutput(); err != nil {
		t.Errorf("openssl req -verify: %v\n%s", err, b)
	}
	csr, err := x509.ParseCertificateRequest(readPEMs(t, csrPath, "CERTIFICATE REQUEST")[0])
	if err != nil {
		t.Fatal(err)
	}
	if s := csr.Subject; s.CommonName != enrolName || s.SerialNumber != enrolNIP || s.Organization[0] != "Pemerintah Provinsi Sulawesi Tenggara" ||
		s.OrganizationalUnit[0] != "Sekretariat Daerah" || s.Country[0] != "ID" || s.Locality[0] != "Kendari" {
		t.Errorf("request subject %v", csr.Subject)
	}
	att := readPEMs(t, attPath, "CERTIFICATE")
	if len(att) != 2 {
		t.Fatalf("attestation file holds %d certificates, want 2", len(att))
	}
	leaf, _ := x509.ParseCertificate(att[0])
	inter, _ := x509.ParseCertificate(att[1])
	if err := leaf.CheckSignatureFrom(inter); err != nil {
		t.Errorf("attestation does not chain: %v", err)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		t.Error("the attested key is not the request's")
	}

	// ykman, Yubico's own tool, finds nothing left at its default.
	if ykman, err := exec.LookPath("ykman"); err == nil {
		cmd := exec.CommandContext(ctx, ykman, "--reader", reader, "piv", "info")
		cmd.Env = os.Environ()
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ykman piv info: %v\n%s", err, b)
		}
		if strings.Contains(strings.ToLower(string(b)), "default") {
			t.Errorf("ykman warns of a default:\n%s", b)
		}
	} else {
		testenv.Unavailable(t, "ykman not found (make deps installs yubikey-manager)")
	}

	// A second enrolment is refused: the key in 9c stays.
	again := tekenctl(t, ctx, nil, "token", "enrol", "--reader", reader, "--name", enrolName, "--nip", enrolNIP,
		"--out-dir", t.TempDir(), "--pin-file", pinFile)
	if again.code != exitFailure || !strings.Contains(again.stderr, "--replace") {
		t.Errorf("enrol over a key: %+v", again)
	}

	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other-ca")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name, want string
		file       string
	}{
		{"other key", "another key", ca.issue(t, dir, "other-key.pem", csr, otherKey.Public(), nil)},
		{"no signing usage", "neither digitalSignature", ca.issue(t, dir, "tls.pem", csr, csr.PublicKey, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageKeyEncipherment
		})},
		{"wrong CA", "does not chain", other.issue(t, dir, "wrong-ca.pem", csr, csr.PublicKey, nil)},
		{"expired", "expired", ca.issue(t, dir, "expired.pem", csr, csr.PublicKey, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
		})},
		{"not yet valid", "not valid before", ca.issue(t, dir, "future.pem", csr, csr.PublicKey, func(c *x509.Certificate) {
			c.NotBefore = time.Now().Add(time.Hour)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tekenctl(t, ctx, nil, "token", "import-cert", "--reader", reader, "--ca", ca.path, "--pin-file", pinFile, tc.file)
			if c.code != exitFailure || !strings.Contains(c.stderr, tc.want) || strings.Count(c.stderr, "\n") != 1 {
				t.Errorf("want exit 1 and one line with %q: %+v", tc.want, c)
			}
		})
	}
	if got := card.PINRetries(); got != 3 {
		t.Errorf("refused imports cost PIN tries: %d left", got)
	}
	good := ca.issue(t, dir, enrolNIP+".pem", csr, csr.PublicKey, nil)
	imp := tekenctl(t, ctx, nil, "token", "import-cert", "--reader", reader, "--ca", ca.path, "--pin-file", pinFile, good)
	if imp.code != exitOK || !strings.Contains(imp.stdout, "is in slot 9c") {
		t.Fatalf("import-cert: %+v", imp)
	}
	der, err := card.Certificate(pivsim.SlotSignature)
	if err != nil || string(der) != string(readPEMs(t, good, "CERTIFICATE")[0]) {
		t.Errorf("slot 9c does not hold the issued certificate (%v)", err)
	}
	info = tekenctl(t, ctx, nil, "token", "info", "--reader", reader)
	if !strings.Contains(info.stdout, enrolName) || !strings.Contains(info.stdout, "PIN:             changed") {
		t.Errorf("token info after enrolment: %+v", info)
	}

	// --replace makes a new key, but not beside the old key's certificate,
	// which tekend would show for signatures no one can verify: that is
	// deleted first (with ykman and the PIN-protected management key).
	replace := []string{"token", "enrol", "--reader", reader, "--name", enrolName, "--nip", enrolNIP,
		"--out-dir", t.TempDir(), "--pin-file", pinFile, "--replace"}
	if re := tekenctl(t, ctx, nil, replace...); re.code != exitFailure || !strings.Contains(re.stderr, "ykman piv certificates delete 9c") {
		t.Fatalf("enrol --replace over a certificate: %+v", re)
	}
	ykman := testenv.LookPath(t, "ykman")
	del := exec.CommandContext(ctx, ykman, "--reader", reader, "piv", "certificates", "delete", "--pin", newPIN, "9c")
	del.Env = os.Environ()
	if b, err := del.CombinedOutput(); err != nil {
		t.Fatalf("ykman piv certificates delete: %v\n%s", err, b)
	}
	if re := tekenctl(t, ctx, nil, replace...); re.code != exitOK {
		t.Fatalf("enrol --replace: %+v", re)
	}
	if der, err := card.Certificate(pivsim.SlotSignature); err == nil && len(der) > 0 {
		t.Errorf("a certificate is in slot 9c beside the new key")
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestEnrolledTokenSignsAtTheKiosk: a factory token enrolled with tekenctl
// and given a certificate from the province's CA signs a letter at a real
// tekend that trusts only that CA and refuses default PINs. tekend starts
// after the enrolment, as the token reaches the kiosk only once enrolled.
// The default P-256 key signs a cms letter; an Ed25519 key (firmware 5.7)
// signs it as a PDF, as cms and as raw, each saved and verified with
// tekenctl.
func TestEnrolledTokenSignsAtTheKiosk(t *testing.T) {
	t.Run("p256", func(t *testing.T) { enrolAndSign(t, pivsim.Config{Serial: 5303}, nil, []string{"cms"}) })
	t.Run("ed25519", func(t *testing.T) {
		enrolAndSign(t, pivsim.Config{Serial: 5304, Version: [3]byte{5, 7, 1}}, []string{"--key-type", "ed25519"}, []string{"pades", "cms", "raw"})
	})
}

func enrolAndSign(t *testing.T, token pivsim.Config, enrolFlags, formats []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	dir := t.TempDir()
	pcscd := testenv.StartPCSCD(t)
	broker := testenv.StartMosquitto(t)
	ca := newTestCA(t, dir, "province-ca")
	_, reader := factoryTokenOf(t, ctx, pcscd, token)
	const newPIN = "80801234"
	pinFile := secretFile(t, dir, "pin", newPIN)
	if e := tekenctl(t, ctx, nil, append([]string{"token", "enrol", "--reader", reader, "--name", enrolName, "--nip", enrolNIP, "--out-dir", dir,
		"--new-pin-file", pinFile, "--new-puk-file", secretFile(t, dir, "puk", "55667788")}, enrolFlags...)...); e.code != exitOK {
		t.Fatalf("enrol: %+v", e)
	}
	csrPath := filepath.Join(dir, enrolNIP+"-csr.pem")
	csr, err := x509.ParseCertificateRequest(readPEMs(t, csrPath, "CERTIFICATE REQUEST")[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(testenv.LookPath(t, "openssl"), "req", "-verify", "-noout", "-in", csrPath).CombinedOutput(); err != nil {
		t.Fatalf("openssl req -verify: %v\n%s", err, b)
	}
	certPath := ca.issue(t, dir, enrolNIP+".pem", csr, csr.PublicKey, nil)
	if c := tekenctl(t, ctx, nil, "token", "import-cert", "--reader", reader, "--ca", ca.path, "--pin-file", pinFile, certPath); c.code != exitOK {
		t.Fatalf("import-cert: %+v", c)
	}

	prefix := filepath.Join(dir, "dispatcher")
	if kg := tekenctl(t, ctx, nil, "keygen", "--out", prefix); kg.code != exitOK {
		t.Fatalf("keygen: %+v", kg)
	}
	cfg := daemon.DefaultConfig()
	cfg.TerminalID = terminalID
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Broker.URLs = []string{broker.URL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = []string{prefix + ".pub"}
	cfg.Kiosk.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Signing.SignerCAFiles = []string{ca.path}
	cfg.Token.RefuseDefaultPIN = true
	kioskURL, _ := startTekend(t, cfg)

	letter := filepath.Join(dir, "surat.pdf")
	if err := os.WriteFile(letter, demo.LetterPDF("Sekretariat Daerah", "005/131/SETDA/XII/2026", "Undangan Rapat Koordinasi", "Rapat pada Kamis, 10 Desember 2026."), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"TEKEN_BROKER": broker.URL, "TEKEN_DISPATCHER_KEY": prefix + ".key"}
	// The first call makes the results session the broker keeps the
	// results in while dispatch --wait runs.
	if r := tekenctl(t, ctx, vars, "results", "--timeout", "1s"); r.code != exitOK {
		t.Fatalf("results: %+v", r)
	}
	kiosk := openKiosk(t, kioskURL)
	for _, format := range formats {
		signed := make(chan error, 1)
		go func() { signed <- kiosk.signAll(1, newPIN) }()
		d := tekenctl(t, ctx, vars, "dispatch", "--terminal", terminalID, "--signer", certPath, "--title", "Undangan Rapat Koordinasi",
			"--format", format, "--wait", letter)
		if err := <-signed; err != nil {
			t.Fatalf("signing %s on the kiosk: %v", format, err)
		}
		m := regexp.MustCompile(`^(\S+) stored\n(\S+) signed\n$`).FindStringSubmatch(d.stdout)
		if d.code != exitOK || m == nil || m[1] != m[2] {
			t.Fatalf("dispatch --format %s --wait: %+v", format, d)
		}
		out := filepath.Join(dir, "signed-"+format)
		if r := tekenctl(t, ctx, vars, "results", "--out", out, "--timeout", "2s"); r.code != exitOK || !strings.Contains(r.stdout, m[1]) {
			t.Fatalf("results --out: %+v", r)
		}
		if v := tekenctl(t, ctx, nil, "verify", "--ca", ca.path, filepath.Join(out, m[1]+".json"), letter); v.code != exitOK || !strings.Contains(v.stdout, "verdict: VALID") {
			t.Errorf("verify of the %s result against the letter: %+v", format, v)
		}
	}
}

// TestTokenEnrolOnTerminal runs tekenctl on a real terminal (util-linux
// script gives it a pty) and types each answer only once its prompt shows:
// the new PIN and PUK are read with echo off, so they never appear in what
// the terminal shows.
func TestTokenEnrolOnTerminal(t *testing.T) {
	scriptTool := testenv.LookPath(t, "script")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	_, reader := factoryToken(t, ctx, testenv.StartPCSCD(t), 5304)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tekenctl")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	line := fmt.Sprintf("%s token enrol --reader %q --out-dir %q", bin, reader, dir)
	cmd := exec.CommandContext(ctx, scriptTool, "-q", "-e", "-c", line, "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=dumb")
	var screen buffer
	cmd.Stdout, cmd.Stderr = &screen, &screen
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const pin, puk = "246810", "13572468"
	answers := []struct{ prompt, answer string }{
		{"name, as on the certificate (CN): ", enrolName}, {"NIP (18 digits): ", enrolNIP},
		{"New PIN (6 to 8 letters or digits): ", pin}, {"New PIN again: ", pin},
		{"New PUK (6 to 8 letters or digits): ", puk}, {"New PUK again: ", puk},
	}
	for i, a := range answers {
		if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
			if strings.Count(screen.String(), a.prompt) < 1+countBefore(answers[:i], a.prompt) {
				return context.DeadlineExceeded
			}
			return nil
		}); err != nil {
			t.Fatalf("no prompt %q; the terminal shows:\n%s", a.prompt, screen.String())
		}
		if _, err := fmt.Fprintln(stdin, a.answer); err != nil {
			t.Fatal(err)
		}
	}
	err = cmd.Wait()
	shown := screen.String()
	t.Logf("the terminal shows:\n%s", shown)
	if err != nil {
		t.Fatalf("tekenctl on a terminal: %v", err)
	}
	if strings.Contains(shown, pin) || strings.Contains(shown, puk) {
		t.Error("a new PIN or PUK was echoed")
	}
	if !strings.Contains(shown, enrolNIP) || !strings.Contains(shown, "enrolled") {
		t.Error("the name or NIP answer or the result is missing")
	}
}

// countBefore counts the earlier answers whose prompt contains prompt.
func countBefore(earlier []struct{ prompt, answer string }, prompt string) int {
	n := 0
	for _, a := range earlier {
		if strings.Contains(a.prompt, prompt) {
			n++
		}
	}
	return n
}
