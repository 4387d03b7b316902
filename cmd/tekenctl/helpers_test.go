package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
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
	logs := &buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: log, Ready: func(k, _ string) { ready <- k }})
	}()
	select {
	case k := <-ready:
		kioskURL = "http://" + k
	case err := <-done:
		cancel()
		t.Fatalf("tekend exited: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("tekend not ready\n%s", logs.String())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("tekend: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("tekend did not stop")
			}
		})
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tekend log:\n%s", logs.String())
		}
	})
	return kioskURL, stop
}

// official drives the kiosk API as the page does: it signs every letter
// shown for the present token, once per call.
type official struct {
	t     *testing.T
	base  string
	csrf  string
	views chan kiosk.View
	// close ends the page's event stream, as closing the browser does.
	close context.CancelFunc
}

func openKiosk(t *testing.T, base string) *official {
	t.Helper()
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the kiosk page")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o := &official{t: t, base: base, csrf: string(m[1]), views: make(chan kiosk.View, 64), close: cancel}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	ev, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer ev.Body.Close()
		sc := bufio.NewScanner(ev.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v kiosk.View
				if json.Unmarshal([]byte(data), &v) == nil {
					select {
					case o.views <- v:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return o
}

// signAll waits until n letters are shown and signs them with pin; it
// reports the error instead of failing, as it runs beside the command.
func (o *official) signAll(n int, pin string) error {
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-o.views:
			if v.State == kiosk.StateDone {
				o.post("/api/dismiss", map[string]any{})
				continue
			}
			if v.State != kiosk.StateToken || !v.CanSign || len(v.Jobs) < n {
				continue
			}
			ids := make([]string, 0, len(v.Jobs))
			for _, j := range v.Jobs {
				ids = append(ids, j.ID)
			}
			if code := o.post("/api/sign", map[string]any{"job_ids": ids, "pin": pin}); code != http.StatusOK {
				return &httpError{code}
			}
			return nil
		case <-deadline:
			return context.DeadlineExceeded
		}
	}
}

type httpError struct{ code int }

func (e *httpError) Error() string { return http.StatusText(e.code) }

func (o *official) post(path string, body any) int {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, o.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", o.base)
	req.Header.Set("X-Teken-CSRF", o.csrf)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}
