package admin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/queue"
)

func TestBackupFile(t *testing.T) {
	store := openStore(t, 20)
	srv := serve(t, store, admin.ServerOptions{})
	dir := t.TempDir()
	path := filepath.Join(dir, "tekend-backup.db")
	ctx := context.Background()

	fb, err := admin.BackupFile(ctx, srv.Path(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != admin.BackupMode || fi.Size() != fb.Bytes || fb.AuditEntries != 20 {
		t.Errorf("backup %v, %d bytes, %d audit entries; want %v, %d bytes, 20 entries", fi.Mode(), fi.Size(), fb.AuditEntries, admin.BackupMode, fb.Bytes)
	}
	// tekenctl audit reads the copy, though tekend holds the store.
	if n, err := ctl.AuditVerify(ctx, path, time.Second); err != nil || n != 20 {
		t.Errorf("tekenctl audit verify on the copy: %d entries, %v", n, err)
	}
	var export bytes.Buffer
	if last, err := ctl.AuditExport(ctx, path, time.Second, &export); err != nil || last != 20 || bytes.Count(export.Bytes(), []byte("\n")) != 20 {
		t.Errorf("tekenctl audit export on the copy: last %d, %d lines, %v", last, bytes.Count(export.Bytes(), []byte("\n")), err)
	}
	assertNoTemp(t, path)

	// Not replaced without -force, whatever tekend holds now.
	insert(t, store, "job-after")
	before, _ := os.ReadFile(path)
	if _, err := admin.BackupFile(ctx, srv.Path(), path, false); !errors.Is(err, admin.ErrExists) {
		t.Fatalf("second backup without force: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the backup was changed without force")
	}
	fb, err = admin.BackupFile(ctx, srv.Path(), path, true)
	if err != nil || fb.AuditEntries != 21 {
		t.Fatalf("backup with force: %+v, %v; want 21 audit entries", fb, err)
	}
	assertNoTemp(t, path)
}

func assertNoTemp(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.tmp left behind: %v", path, err)
	}
}

// A link planted where the temporary file goes is not followed: the file it
// points to stays as it was.
func TestBackupFileDoesNotFollowALink(t *testing.T) {
	srv := serve(t, openStore(t, 2), admin.ServerOptions{})
	dir := t.TempDir()
	victim := filepath.Join(dir, "passwd")
	if err := os.WriteFile(victim, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "backup.db")
	if err := os.Symlink(victim, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.BackupFile(context.Background(), srv.Path(), path, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0" {
		t.Errorf("the link's target was written: %q", b)
	}
	if _, err := ctl.AuditVerify(context.Background(), path, time.Second); err != nil {
		t.Errorf("backup: %v", err)
	}
}

// A backup that fails leaves neither the file nor its temporary.
func TestBackupFileFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	_, err := admin.BackupFile(context.Background(), filepath.Join(dir, "none.sock"), path, false)
	if !errors.Is(err, admin.ErrNotRunning) {
		t.Errorf("no tekend: %v, want ErrNotRunning", err)
	}
	assertGone(t, path)

	// A server that fails half way.
	srv := serve(t, failing{after: 1 << 20}, admin.ServerOptions{})
	_, err = admin.BackupFile(context.Background(), srv.Path(), path, false)
	var se *admin.ServerError
	if !errors.As(err, &se) || se.Code != admin.CodeFailed {
		t.Errorf("failed on the way: %v, want a failed answer", err)
	}
	assertGone(t, path)

	// Bytes that are no store are not kept as a backup.
	srv = serve(t, failing{after: 1 << 20, ok: true}, admin.ServerOptions{})
	if _, err := admin.BackupFile(context.Background(), srv.Path(), path, false); err == nil {
		t.Error("a copy that is no store was kept")
	}
	assertGone(t, path)
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + ".tmp"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a failed backup: %v", p, err)
		}
	}
}

// failing writes after bytes of zeros, then fails, or with ok ends there
// as though that were the store.
type failing struct {
	after int64
	ok    bool
}

func (f failing) Backup(_ context.Context, w io.Writer) (int64, error) {
	n, err := io.CopyN(w, zeros{}, f.after)
	if err != nil || f.ok {
		return n, err
	}
	return n, errors.New("read page 3: input/output error")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

var _ admin.Store = (*queue.Store)(nil)
