package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where a missing component is a
// failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test, or fails it under CI, because a real component
// it needs cannot be had.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required component unavailable in CI: "+format, args...)
	}
	t.Skipf("component unavailable: "+format, args...)
}

// LookPath returns the path of a program the test needs, or calls
// Unavailable.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// sbin is often missing from a non-root PATH.
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(dir + "/" + name); serr == nil {
				return dir + "/" + name
			}
		}
		Unavailable(t, "%s not found (make deps installs it)", name)
	}
	return p
}
