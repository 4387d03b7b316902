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

// TestYkmanPIVInfo reads the card with ykman, Yubico's own client, through
// the same pcscd: its PIV application, PIN and PUK metadata and a
// generated key.
func TestYkmanPIVInfo(t *testing.T) {
	ykman := testenv.LookPath(t, "ykman")
	c, err := New(Config{Serial: 7001, Version: [3]byte{5, 4, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(SlotSignature, AlgECCP256, PINPolicyAlways, TouchPolicyNever); err != nil {
		t.Fatal(err)
	}
	_, reader := inserted(t, c)
	out, err := runYkman(ykman, reader, "piv", "info")
	t.Logf("ykman piv info:\n%s", out)
	if err != nil {
		t.Fatalf("ykman piv info: %v", err)
	}
	for _, want := range []string{"PIV version: 5.4.3", "PIN tries remaining: 3/3", "Using default PIN!", "Using default Management key!"} {
		if !strings.Contains(out, want) {
			t.Errorf("ykman piv info lacks %q", want)
		}
	}
}

func runYkman(ykman, reader string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ykman, append([]string{"--reader", reader}, args...)...)
	cmd.Env = os.Environ() // carries PCSCLITE_CSOCK_NAME to the private pcscd
	out, err := cmd.CombinedOutput()
	return string(out), err
}
