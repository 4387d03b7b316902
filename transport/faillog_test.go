package transport

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A failure retried a hundred times is logged when it starts, when its
// reason changes and when it ends — not per attempt.
func TestFailureLogOnChange(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f := failureLog{msg: "mqtt connect failed"}
	for range 100 {
		f.failed(log, errors.New("connection refused"))
	}
	for range 50 {
		f.failed(log, errors.New("i/o timeout"))
	}
	f.succeeded(log, "mqtt connected after failed attempts")
	f.succeeded(log, "mqtt connected after failed attempts")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), b.String())
	}
	for i, want := range []string{"connection refused", "times=100", "i/o timeout", "after_failures=50"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
	}
}
