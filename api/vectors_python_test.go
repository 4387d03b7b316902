package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
)

// checkVectorsScript is the integrators' checker of the vectors.
var checkVectorsScript = filepath.Join("..", "examples", "check-vectors.py")

// debianCryptography returns Debian's python3 when it has
// python3-cryptography, which is all examples/check-vectors.py and
// examples/central use besides the standard library.
func debianCryptography(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testenv.Unavailable(t, "%s: %v (Debian package python3)", py, err)
	}
	if out, err := exec.Command(py, "-c", "import cryptography.hazmat.primitives.asymmetric.ed25519").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "%s has no cryptography (Debian package python3-cryptography): %v\n%s", py, err, out)
	}
	return py
}

// TestCheckVectorsScript runs examples/check-vectors.py on the committed
// vectors — it must pass every check — and on a copy with one envelope
// and one signature damaged, where it must name both and fail: a checker
// that cannot fail proves nothing.
func TestCheckVectorsScript(t *testing.T) {
	py := debianCryptography(t)
	openssl := testenv.LookPath(t, "openssl")
	run := func(dir string) (string, error) {
		cmd := exec.Command(py, checkVectorsScript, "--vectors", dir, "--openssl", openssl, "--quiet")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(vectorsDir)
	if err != nil || !strings.Contains(out, " 0 failed") {
		t.Fatalf("check-vectors.py: %v\n%s", err, out)
	}
	t.Logf("check-vectors.py: %s", strings.TrimSpace(out))

	// The copy keeps the layout: vectors/ beside keys/.
	tmp := t.TempDir()
	for _, d := range []string{"vectors", "keys"} {
		if err := os.CopyFS(filepath.Join(tmp, d), os.DirFS(filepath.Join("testdata", d))); err != nil {
			t.Fatal(err)
		}
	}
	damage := func(name string, at func([]byte) int) {
		p := filepath.Join(tmp, "vectors", filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[at(b)] ^= 0x01 // a base64url character stays one (A↔B), a DER byte changes
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	damage("job.ed25519.jws", func(b []byte) int { return bytes.LastIndexByte(b, '.') + 5 })
	damage("signatures/surat.p7s", func(b []byte) int { return len(b) - 10 })
	out, err = run(filepath.Join(tmp, "vectors"))
	if err == nil {
		t.Fatalf("check-vectors.py passed damaged vectors:\n%s", out)
	}
	for _, want := range []string{"FAIL  job.ed25519.jws verifies", "FAIL  job.ed25519.jws signed again", "FAIL  receipt-stored.json envelope_sha256", "FAIL  result-signed.json document surat (cms) is signatures/surat.p7s", "(cms): openssl cms -verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-vectors.py on damaged vectors does not say %q:\n%s", want, out)
		}
	}
}
