package pivsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// TestOpenSC checks that OpenSC's PIV driver recognises the card, lists
// the certificates through PKCS#11 and signs with the 9c key.
func TestOpenSC(t *testing.T) {
	tool := testenv.LookPath(t, "pkcs11-tool")
	module := "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
	if _, err := os.Stat(module); err != nil {
		testenv.Unavailable(t, "opensc-pkcs11 module missing: %v", err)
	}
	dir := t.TempDir()
	demo, err := ProvisionDemo(dir, Official{Name: "Siti Rahma", NIP: "199001012015032002"})
	if err != nil {
		t.Fatal(err)
	}
	inserted(t, demo.Card)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, tool, append([]string{"--module", module}, args...)...)
		cmd.Env = os.Environ() // carries PCSCLITE_CSOCK_NAME to the private pcscd
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("--list-objects")
	t.Logf("objects:\n%s", out)
	if !strings.Contains(out, "Siti Rahma") {
		t.Errorf("OpenSC lists no certificate for the official")
	}
	in := filepath.Join(dir, "data")
	if err := os.WriteFile(in, []byte("surat masuk"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = run("--sign", "--mechanism", "ECDSA-SHA256", "--id", "02", "--login", "--pin", DefaultPIN,
		"--input-file", in, "--output-file", filepath.Join(dir, "sig"))
	t.Logf("sign:\n%s", out)
	raw, err := os.ReadFile(filepath.Join(dir, "sig"))
	if err != nil || len(raw) != 64 {
		t.Fatalf("signature file: %d bytes, %v", len(raw), err)
	}
	der, err := demo.Card.Certificate(SlotSignature)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("surat masuk"))
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if !ecdsa.Verify(cert.PublicKey.(*ecdsa.PublicKey), h[:], r, s) {
		t.Fatal("OpenSC signature does not verify with the 9c certificate")
	}
}
