package pivsim

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// TestYubicoPIVTool drives the card with yubico-piv-tool, an independent
// client, through the same pcscd.
func TestYubicoPIVTool(t *testing.T) {
	tool := testenv.LookPath(t, "yubico-piv-tool")
	demo, err := ProvisionDemo(t.TempDir(), Official{Name: "Budi Santoso", NIP: "198503302010011001"})
	if err != nil {
		t.Fatal(err)
	}
	_, reader := inserted(t, demo.Card)
	run := func(args ...string) string {
		t.Helper()
		out, err := runTool(tool, reader, args...)
		if err != nil {
			t.Fatalf("yubico-piv-tool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := run("-a", "status")
	t.Logf("status:\n%s", out)
	for _, want := range []string{"Slot 9c", "CN=Budi Santoso", "PIN tries left:\t3"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	// test-signature reads the slot's certificate from -i (stdin by
	// default) to check the signature against.
	out = run("-a", "verify-pin", "-P", DefaultPIN, "-a", "test-signature", "-s", "9c", "-i", demo.CertPath)
	t.Logf("test-signature:\n%s", out)
	if !strings.Contains(out, "Successful") {
		t.Errorf("test-signature did not report success")
	}
	// 9c has PIN policy always: without a VERIFY the card refuses.
	if out, err := runTool(tool, reader, "-a", "test-signature", "-s", "9c", "-i", demo.CertPath); err == nil {
		t.Errorf("test-signature without PIN succeeded:\n%s", out)
	}
	if out, err := runTool(tool, reader, "-a", "verify-pin", "-P", "000000"); err == nil || !strings.Contains(out, "2 tries left") {
		t.Errorf("wrong PIN: %v\n%s", err, out)
	}
	// Key generation authenticates with the default 3DES management key.
	out = run("-a", "generate", "-s", "9d", "-A", "ECCP384")
	if !strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Errorf("generate printed no public key:\n%s", out)
	}
	if demo.Card.PINRetries() != 2 {
		t.Errorf("PINRetries() = %d after one wrong PIN", demo.Card.PINRetries())
	}
}

func runTool(tool, reader string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"-r", reader}, args...)...)
	cmd.Env = os.Environ() // carries PCSCLITE_CSOCK_NAME to the private pcscd
	out, err := cmd.CombinedOutput()
	return string(out), err
}
