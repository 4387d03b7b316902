package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// buffer is an io.Writer safe for a command running in another goroutine.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// call is one in-process run of tekenctl.
type call struct {
	code           int
	stdout, stderr string
}

// tekenctl runs the command in-process with vars as its whole environment.
func tekenctl(t *testing.T, ctx context.Context, vars map[string]string, args ...string) call {
	t.Helper()
	var out, errb buffer
	code := run(ctx, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }}, args)
	t.Logf("tekenctl %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return call{code, out.String(), errb.String()}
}

// startTekend runs a real tekend in-process until the test ends.
func startTekend(t *testing.T, cfg daemon.Config) (kioskURL string, stop func()) {
	t.Helper()
	kioskURL, _, stop = tekentest.RunTekend(t, cfg, &tekentest.SyncBuffer{})
	return kioskURL, stop
}

// official signs every letter shown for the present token, through the
// kiosk API as the page does.
type official struct {
	*tekentest.Kiosk
	signed map[string]bool // letters signed already, which old views still list
}

func openKiosk(t *testing.T, base string) *official {
	t.Helper()
	return &official{Kiosk: tekentest.OpenKiosk(t, base), signed: map[string]bool{}}
}

// signAll waits until n letters not signed yet are shown and signs them
// with pin; it reports the error instead of failing, as it runs beside the
// command.
func (o *official) signAll(n int, pin string) error {
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-o.Views:
			if v.State == kiosk.StateDone {
				o.Post("/api/dismiss", map[string]any{})
				continue
			}
			if v.State != kiosk.StateToken || !v.CanSign {
				continue
			}
			ids := make([]string, 0, len(v.Jobs))
			for _, j := range v.Jobs {
				if !o.signed[j.ID] {
					ids = append(ids, j.ID)
				}
			}
			if len(ids) < n {
				continue
			}
			if code, body := o.Sign(ids, pin); code != http.StatusOK {
				return fmt.Errorf("sign: %d %v", code, body)
			}
			for _, id := range ids {
				o.signed[id] = true
			}
			return nil
		case <-deadline:
			return context.DeadlineExceeded
		}
	}
}
