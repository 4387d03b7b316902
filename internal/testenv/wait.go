package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/sandbox"
)

// WaitFor polls cond until it returns nil, returns an error made by
// Permanent, or the timeout passes. Tests wait only this way: no fixed sleeps.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	return sandbox.WaitFor(ctx, timeout, cond)
}

// Permanent wraps err so that WaitFor stops polling and returns it at once.
func Permanent(err error) error { return sandbox.Permanent(err) }

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := sandbox.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
