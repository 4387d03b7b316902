package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tekenid/teken/queue"
)

// BackupMode is the permission of a backup file: it holds every letter the
// terminal still keeps and the audit log.
const BackupMode fs.FileMode = 0o600

// ErrExists means the backup file is there already and force was not
// asked for.
var ErrExists = errors.New("the backup file exists")

// FileBackup is what BackupFile wrote.
type FileBackup struct {
	Bytes int64
	// AuditEntries is the length of the audit log's hash chain, verified
	// in the copy.
	AuditEntries uint64
}

// BackupFile writes a backup of the store of the tekend at socketPath to
// path. It writes path.tmp in the same directory (a leftover of an earlier
// attempt is replaced), syncs it, checks it — it opens as a store and its
// audit chain verifies — and only then renames it to path, mode
// BackupMode, and syncs the directory: path is either the old file or a
// whole, checked backup. Without force it refuses, with ErrExists, to
// replace a file at path.
func BackupFile(ctx context.Context, socketPath, path string, force bool) (FileBackup, error) {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return FileBackup{}, fmt.Errorf("%s: %w (replace it with -force)", path, ErrExists)
		}
	}
	tmp := path + ".tmp"
	f, err := createFresh(tmp)
	if err != nil {
		return FileBackup{}, fmt.Errorf("backup file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmp)
		}
	}()
	var fb FileBackup
	fb.Bytes, err = writeBackup(ctx, socketPath, f)
	if err != nil {
		return fb, err
	}
	if fb.AuditEntries, err = check(ctx, tmp); err != nil {
		return fb, fmt.Errorf("check the copy %s: %w", tmp, err)
	}
	if err := place(tmp, path, force); err != nil {
		return fb, err
	}
	keep = true
	return fb, nil
}

// createFresh creates path for writing, mode BackupMode whatever the
// umask. O_EXCL never follows a link planted at path; what is there is
// removed (a link itself, never its target) and the create tried again.
func createFresh(path string) (*os.File, error) {
	open := func() (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, BackupMode)
	}
	f, err := open()
	if errors.Is(err, fs.ErrExist) {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
		f, err = open()
	}
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(BackupMode); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// writeBackup copies the store into f, syncs and closes it.
func writeBackup(ctx context.Context, socketPath string, f *os.File) (int64, error) {
	w := bufio.NewWriterSize(f, 1<<20)
	n, err := Backup(ctx, socketPath, w)
	if err != nil {
		_ = f.Close()
		return n, err
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return n, nil
}

// check opens the copy read-only, as `tekenctl audit` does, and verifies
// its audit chain.
func check(ctx context.Context, path string) (uint64, error) {
	s, err := queue.OpenReadOnly(path, queue.Options{Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	n, err := s.VerifyAudit(ctx)
	if cerr := s.Close(context.WithoutCancel(ctx)); err == nil {
		err = cerr
	}
	return n, err
}

// place renames tmp to path — without force only if path does not exist,
// in the same step — and syncs the directory, so the rename is durable.
func place(tmp, path string, force bool) error {
	var err error
	if force {
		err = os.Rename(tmp, path)
	} else {
		err = renameNoReplace(tmp, path)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w (replace it with -force)", path, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("backup file: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup file: sync directory: %w", err)
	}
	return nil
}

// renameNoReplace renames with RENAME_NOREPLACE (rename(2)); on a
// filesystem without it, it checks first, which leaves a moment in which
// a file made at path is replaced.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
		return nil
	}
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}
