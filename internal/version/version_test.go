package version

import "testing"

func TestStampedVersionWins(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	if got := String(); got != "1.2.3" {
		t.Fatalf("String() = %q, want 1.2.3", got)
	}
}

func TestFallbackIsNeverEmpty(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = ""
	if String() == "" {
		t.Fatal("String() is empty without a stamped version")
	}
}
