package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
)

// TestLoggerQuietAndVerbose: without --verbose only the warnings a command
// does not report itself and every error print, without times; with it,
// everything from debug up, with times.
func TestLoggerQuietAndVerbose(t *testing.T) {
	for _, tc := range []struct {
		level          slog.Level
		msg            string
		quiet, verbose bool
	}{
		{slog.LevelInfo, "mqtt connected", false, true},
		{slog.LevelDebug, "mqtt reconnecting", false, true},
		{slog.LevelWarn, "mqtt connect failed", false, true},
		{slog.LevelWarn, "mqtt connection lost", false, true},
		{slog.LevelWarn, "job refused", false, true},
		{slog.LevelWarn, "invalid result dropped", true, true},
		{slog.LevelWarn, "control message refused", true, true},
		{slog.LevelError, "mqtt subscribe failed; reconnecting", true, true},
		{slog.LevelError, "job id reused for another envelope: the terminal keeps the first", true, true},
		{slog.LevelInfo, "jobs published again after sync", false, true},
	} {
		for _, verbose := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/verbose=%v", tc.msg, verbose), func(t *testing.T) {
				var b bytes.Buffer
				v := new(verbosity)
				log := newLogger(&b, v).With("client_id", "tekenctl-x")
				if verbose {
					if err := v.Set("true"); err != nil {
						t.Fatal(err)
					}
				}
				log.Log(context.Background(), tc.level, tc.msg, "terminal", "t-1")
				want := tc.quiet
				if verbose {
					want = tc.verbose
				}
				if got := strings.Contains(b.String(), tc.msg); got != want {
					t.Fatalf("printed %v, want %v: %q", got, want, b.String())
				}
				if want && strings.Contains(b.String(), "time=") != verbose {
					t.Errorf("time shown %v, want %v: %q", !verbose, verbose, b.String())
				}
				if want && !strings.Contains(b.String(), "client_id=tekenctl-x terminal=t-1") {
					t.Errorf("attributes lost: %q", b.String())
				}
			})
		}
	}
}

// TestConnectFailureIsOneLine: a broker that cannot be reached is one line,
// the command's error naming why; --verbose adds the connection's log,
// before or after the command name.
func TestConnectFailureIsOneLine(t *testing.T) {
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	quiet := tekenctl(t, context.Background(), nil, "fleet", "--broker", broker)
	if quiet.code != exitFailure || strings.Count(quiet.stderr, "\n") != 1 ||
		!strings.HasPrefix(quiet.stderr, "tekenctl fleet: ") || !strings.Contains(quiet.stderr, "connection refused") {
		t.Fatalf("quiet: want exit 1 and one line naming the cause: %+v", quiet)
	}
	for _, args := range [][]string{{"--verbose", "fleet", "--broker", broker}, {"fleet", "-v", "--broker", broker}} {
		c := tekenctl(t, context.Background(), nil, args...)
		if c.code != exitFailure || !strings.Contains(c.stderr, `level=WARN msg="mqtt connect failed"`) || !strings.Contains(c.stderr, quiet.stderr) {
			t.Errorf("%v: want the connection's log and the same error: %+v", args, c)
		}
	}
}

// TestConnectedIsQuiet is the field report: a command that works prints its
// output and nothing on stderr, unless asked.
func TestConnectedIsQuiet(t *testing.T) {
	m := testenv.StartMosquitto(t)
	vars := map[string]string{"TEKEN_BROKER": m.URL}
	quiet := tekenctl(t, context.Background(), vars, "fleet", "--json", "--quiet", "100ms")
	if quiet.code != exitOK || strings.TrimSpace(quiet.stdout) != "[]" || quiet.stderr != "" {
		t.Fatalf("quiet fleet: %+v", quiet)
	}
	for _, args := range [][]string{{"-v", "fleet", "--json", "--quiet", "100ms"}, {"fleet", "--json", "--verbose", "--quiet", "100ms"}} {
		c := tekenctl(t, context.Background(), vars, args...)
		if c.code != exitOK || c.stdout != quiet.stdout || !strings.Contains(c.stderr, `level=INFO msg="mqtt connected"`) || !strings.Contains(c.stderr, "time=") {
			t.Errorf("%v: want the same output and the connection's log: %+v", args, c)
		}
	}
}
