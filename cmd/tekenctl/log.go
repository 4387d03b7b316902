package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// verbosity is the --verbose switch. It is a flag.Value shared by the
// top-level flags and every command's, so that it may come before or
// after the command name; the logger reads it when it logs.
type verbosity struct{ on atomic.Bool }

var _ flag.Value = (*verbosity)(nil)

func (v *verbosity) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	v.on.Store(b)
	return nil
}

func (v *verbosity) String() string {
	return strconv.FormatBool(v != nil && v.on.Load())
}

// IsBoolFlag lets --verbose stand without a value.
func (v *verbosity) IsBoolFlag() bool { return true }

func (v *verbosity) enabled() bool { return v != nil && v.on.Load() }

// addVerbose defines --verbose and -v on fs.
func addVerbose(fs *flag.FlagSet, v *verbosity) {
	fs.Var(v, "verbose", "also log the broker connection (connects, losses, retries) with times, to stderr")
	fs.Var(v, "v", "short for --verbose")
	// The default is off, even when a --verbose before the command name
	// has turned the shared switch on already.
	fs.Lookup("verbose").DefValue = "false"
	fs.Lookup("v").DefValue = "false"
}

// newLogger returns the logger the transport logs to: with --verbose,
// everything from debug up, with times; without, only the warnings and
// errors the command does not report itself (see quiet).
func newLogger(w io.Writer, v *verbosity) *slog.Logger {
	inner := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(&cliHandler{inner: inner, v: v})
}

// cliHandler filters records by the --verbose switch at the time each is
// logged.
type cliHandler struct {
	inner slog.Handler
	v     *verbosity
}

var _ slog.Handler = (*cliHandler)(nil)

func (h *cliHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.v.enabled() || l >= slog.LevelWarn
}

func (h *cliHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.v.enabled() {
		if quiet(r) {
			return nil
		}
		// A quiet line is read once, by a person at a prompt; times are
		// for following a verbose log. The handler leaves out a zero time.
		r.Time = time.Time{}
	}
	return h.inner.Handle(ctx, r)
}

func (h *cliHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &cliHandler{inner: h.inner.WithAttrs(as), v: h.v}
}

func (h *cliHandler) WithGroup(name string) slog.Handler {
	return &cliHandler{inner: h.inner.WithGroup(name), v: h.v}
}

// quiet reports whether a record is left out without --verbose: whatever
// is below a warning, and the warnings a command reports in its own words,
// so that a failure stays one line. The transport's connection log (its
// messages start with "mqtt ") reaches the user as the command's error
// ("wait for broker: … (last error: …)"), and dispatch prints a refusal
// itself. Errors always print.
func quiet(r slog.Record) bool {
	switch {
	case r.Level >= slog.LevelError:
		return false
	case r.Level < slog.LevelWarn:
		return true
	}
	return strings.HasPrefix(r.Message, "mqtt ") || r.Message == "job refused"
}
