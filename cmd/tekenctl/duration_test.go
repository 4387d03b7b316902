package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"7d", 7 * day, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"36h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1.5d", 36 * time.Hour, ""},
		{".5d", 12 * time.Hour, ""},
		{"12h1d", 36 * time.Hour, ""},
		{"1d1d", 2 * day, ""},
		{"2d3h4m5s6ms7us8ns", 2*day + 3*time.Hour + 4*time.Minute + 5*time.Second + 6*time.Millisecond + 7*time.Microsecond + 8, ""},
		{"1µs", time.Microsecond, ""},
		{"1μs", time.Microsecond, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"0d", 0, ""},
		{"+1d", day, ""},
		{"106751d", 106751 * day, ""},
		{"106752d", 0, "too large"},
		{"106751d23h47m16.854775807s", math.MaxInt64, ""},
		{"106751d23h47m16.854775808s", 0, "too large"},
		{"9223372036854775807ns1ns", 0, "too large"},
		{"", 0, "empty"},
		{"+", 0, "empty"},
		{"-1d", 0, "negative"},
		{"-0", 0, "negative"},
		{"d", 0, "want a number"},
		{".d", 0, "want a number"},
		{"5", 0, "missing unit after 5"},
		{"1d5", 0, "missing unit after 5"},
		{"7D", 0, `unknown unit "D"`},
		{"1w", 0, `unknown unit "w"`},
		{"1 d", 0, `unknown unit " d"`},
		{"1.2.3d", 0, "missing unit after 1.2"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDuration(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseDuration(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {500 * time.Millisecond, "500ms"}, {2 * time.Second, "2s"}, {90 * time.Second, "1m30s"},
		{36 * time.Hour, "1d12h"}, {7 * day, "7d"}, {day + time.Second, "1d1s"}, {day + time.Millisecond, "24h0m0.001s"},
	} {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestDurationFlags: every duration tekenctl takes reads days, whether its
// command defines it with durationFlag or with fs.Duration, and the help
// shows defaults in the same way.
func TestDurationFlags(t *testing.T) {
	for _, args := range [][]string{
		{"dispatch", "--terminal", "t-1", "--signer", "none.pem", "--expires", "7d", "--timeout", "1d12h", "none.pdf"},
		{"results", "--timeout", "36h"},
		{"fleet", "--quiet", "90m", "--listen", "1d", "--watch", "5"},
		{"fleet", "--watch", "1m"},
		{"audit", "verify", "--db", "none.db", "--timeout", "1d"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			c := tekenctl(t, context.Background(), nil, args...)
			// It gets past its flags and fails at what is missing.
			if c.code != exitFailure || strings.Contains(c.stderr, "invalid value") {
				t.Errorf("want exit %d past the flags: %+v", exitFailure, c)
			}
		})
	}
	if c := tekenctl(t, context.Background(), nil, "dispatch", "--help"); !strings.Contains(c.stdout, "(default 1d)") || !strings.Contains(c.stdout, "(default 30s)") {
		t.Errorf("dispatch --help does not show durations as they are typed:\n%s", c.stdout)
	}

	// A flag defined with fs.Duration takes them through parse.
	e := env{stdout: io.Discard, stderr: io.Discard}.withLog()
	fs := flags(e, "test", "")
	d := fs.Duration("wait", time.Minute, "")
	own := durationFlag(fs, "own", time.Hour, "")
	if code, ok := parse(e, fs, []string{"--wait", "1d12h", "--own=2d"}); !ok || *d != 36*time.Hour || *own != 2*day {
		t.Fatalf("parse: %d %v, --wait %v, --own %v", code, ok, *d, *own)
	}
}

func TestDurationValueBareNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{"30s", 30 * time.Second, true},
		{"1m", time.Minute, true},
		{"1d", day, true},
		{"9223372036", 9223372036 * time.Second, true},
		{"9223372037", 0, false},
		{"99999999999999999999", 0, false},
		{"-5", 0, false},
		{"5x", 0, false},
	} {
		var d time.Duration
		err := (&durationValue{d: &d, bare: time.Second}).Set(tc.in)
		if (err == nil) != tc.ok || d != tc.want {
			t.Errorf("Set(%q): %v, %v; want %v ok=%v", tc.in, d, err, tc.want, tc.ok)
		}
	}
	var d time.Duration
	if err := (&durationValue{d: &d}).Set("5"); err == nil {
		t.Error("a duration flag without a bare unit took 5")
	}
}

// FuzzParseDuration: parseDuration never fails to read what formatDuration
// writes, agrees with time.ParseDuration wherever that reads a
// non-negative duration, and differs only by reading days.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "36h", "90m", "1.5d", "0", "+1s", "-1d", "5", "1w", "106752d", ".5µs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil {
			if d < 0 {
				t.Fatalf("parseDuration(%q) = %v, negative", s, d)
			}
			back, err := parseDuration(formatDuration(d))
			if err != nil || back != d {
				t.Fatalf("%q: %v formats as %q, which reads %v, %v", s, d, formatDuration(d), back, err)
			}
		}
		if strings.Contains(s, "d") || strings.HasPrefix(strings.TrimPrefix(s, "+"), "-") {
			return
		}
		std, stdErr := time.ParseDuration(s)
		switch {
		case err == nil && (stdErr != nil || std != d):
			t.Fatalf("%q: reads %v, time.ParseDuration %v, %v", s, d, std, stdErr)
		case err != nil && stdErr == nil && !errors.Is(err, errDurationRange):
			// time.ParseDuration wraps around on some sums past its
			// range ("9223372036854775808ns9223372036854775808ns" is 0);
			// only there may the two disagree.
			t.Fatalf("%q: %v, but time.ParseDuration reads %v", s, err, std)
		}
	})
}

var _ flag.Value = stdDuration{}
