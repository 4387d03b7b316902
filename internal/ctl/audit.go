package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tekenid/teken/queue"
)

// ErrLiveDatabase says a running tekend holds the database file.
var ErrLiveDatabase = errors.New("the database is held by a running tekend")

// openAudit opens a tekend database read-only, waiting at most timeout for
// a lock a tekend holds.
func openAudit(path string, timeout time.Duration) (*queue.Store, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	s, err := queue.OpenReadOnly(path, queue.Options{Timeout: timeout})
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("%s: %w; take a copy with 'tekend backup /tmp/tekend-copy.db' (or stop tekend) and run this on the copy", path, ErrLiveDatabase)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// AuditExport writes the audit log as JSON Lines and returns the last
// sequence written.
func AuditExport(ctx context.Context, path string, timeout time.Duration, w io.Writer) (uint64, error) {
	s, err := openAudit(path, timeout)
	if err != nil {
		return 0, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	return s.ExportAudit(ctx, w, 0)
}

// AuditVerify walks the hash chain and returns how many entries it holds; a
// broken link is a *queue.ChainError naming the first bad entry.
func AuditVerify(ctx context.Context, path string, timeout time.Duration) (uint64, error) {
	s, err := openAudit(path, timeout)
	if err != nil {
		return 0, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	return s.VerifyAudit(ctx)
}
