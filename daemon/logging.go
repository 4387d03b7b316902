package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode"

	"github.com/coreos/go-systemd/v22/journal"
)

// ParseLogLevel reads log_level: debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// NewLogger logs at level to journald when tekend's stderr is the journal
// (systemd sets JOURNAL_STREAM for a unit's stderr; sd_journal_print(3)),
// with the priority and every attribute as a field of its own, so IT can
// filter with journalctl -p and JOB=…; elsewhere it writes text to stderr.
// A *slog.LevelVar as level lets a reload change it.
// Nothing logged may carry a PIN, a key or a document: callers log ids,
// hashes and reasons only.
func NewLogger(level slog.Leveler, stderr io.Writer) *slog.Logger {
	if ok, err := journal.StderrIsJournalStream(); err == nil && ok && journal.Enabled() {
		return slog.New(&journalHandler{level: level, fallback: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})})
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// journalHandler sends each record to journald natively.
type journalHandler struct {
	level    slog.Leveler
	attrs    []slog.Attr
	group    string
	fallback slog.Handler // when journald refuses a record
}

var _ slog.Handler = (*journalHandler)(nil)

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "tekend"}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, g := range v.Group() {
				add(prefix+a.Key+"_", g)
			}
			return
		}
		if name := journalField(prefix + a.Key); name != "" {
			vars[name] = v.String()
		}
	}
	prefix := h.group
	for _, a := range h.attrs {
		add(prefix, a)
	}
	r.Attrs(func(a slog.Attr) bool { add(prefix, a); return true })
	if err := journal.Send(r.Message, journalPriority(r.Level), vars); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	c.fallback = h.fallback.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "_"
	c.fallback = h.fallback.WithGroup(name)
	return &c
}

// journalPriority maps slog levels to syslog priorities (syslog(3)).
func journalPriority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// journalField turns an attribute key into a journal field name: upper
// case letters, digits and underscores, not starting with an underscore
// (those are trusted fields journald sets itself; systemd.journal-fields(7)),
// at most 64 characters. It returns "" for a key that cannot be one.
func journalField(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_0123456789")
	if len(name) > 64 {
		name = name[:64]
	}
	switch name {
	case "", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER":
		return "" // set by Handle, never by an attribute
	}
	return name
}
