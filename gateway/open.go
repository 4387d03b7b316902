package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/boltstore"
)

// OpenStore opens the store the configuration names; the caller closes
// it after Run.
func OpenStore(ctx context.Context, cfg Config) (store.Store, error) {
	switch cfg.Store.Kind {
	case "bolt":
		if err := os.MkdirAll(filepath.Dir(cfg.Store.Path), 0o700); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		return boltstore.Open(cfg.Store.Path, boltstore.Options{Hooks: cfg.Hooks()})
	case "postgres":
		return openPostgres(ctx, cfg)
	}
	return nil, fmt.Errorf("store.kind %q: want bolt or postgres", cfg.Store.Kind)
}

// LogHandler is the gateway's log format: logfmt lines (journald keeps
// them as they are), at level and above.
func LogHandler(w io.Writer, level string) slog.Handler {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})
}
