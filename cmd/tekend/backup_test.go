package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/queue"
)

// backupServer serves the admin socket of a store holding three jobs, as
// a running tekend does.
func backupServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	store, err := queue.Open(filepath.Join(dir, "tekend.db"), queue.Options{TerminalID: "kendari-setda-01", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	for i := range 3 {
		env := fmt.Appendf(nil, "envelope %d", i)
		if _, _, err := store.Insert(context.Background(), queue.Job{ID: fmt.Sprint("job-", i), Envelope: env,
			Digests: []queue.Digest{sha256.Sum256(env)}}); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := admin.Listen(filepath.Join(dir, "tekend.sock"), admin.ServerOptions{Store: store, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close(context.Background())
		<-served
	})
	return srv.Path()
}

func tekendBackup(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"backup"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBackupCommand(t *testing.T) {
	sock := backupServer(t)
	file := filepath.Join(t.TempDir(), "tekend-backup.db")

	code, out, errs := tekendBackup("-socket", sock, file)
	if code != 0 || !strings.Contains(out, file+" written") || !strings.Contains(out, "3 entries verified") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode() != 0o600 {
		t.Errorf("backup file %v, %v; want mode 0600", fi, err)
	}
	code, _, errs = tekendBackup("-socket", sock, file)
	if code != 1 || !strings.Contains(errs, "-force") {
		t.Errorf("backup over a file without -force: exit %d, %q", code, errs)
	}
	// Flags may follow the file.
	if code, out, errs := tekendBackup(file, "-force", "-socket", sock); code != 0 {
		t.Errorf("backup -force: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Lstat(file + ".tmp"); err == nil {
		t.Error("temporary file left behind")
	}
}

func TestBackupCommandRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		says string // on stderr
	}{
		{args: []string{"-socket", filepath.Join(dir, "none.sock"), filepath.Join(dir, "b.db")}, code: 1, says: "is tekend running?"},
		{args: nil, code: 2, says: "name the FILE"},
		{args: []string{"a.db", "b.db"}, code: 2, says: "one FILE only"},
		{args: []string{"-forse", "a.db"}, code: 2, says: "flag provided but not defined"},
	} {
		code, _, errs := tekendBackup(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.says) {
			t.Errorf("tekend backup %q: exit %d, %q; want %d saying %q", tc.args, code, errs, tc.code, tc.says)
		}
		if tc.code == 2 && !strings.Contains(errs, "Usage: tekend backup") {
			t.Errorf("tekend backup %q: no usage", tc.args)
		}
		if _, err := os.Lstat(filepath.Join(dir, "b.db")); err == nil {
			t.Errorf("tekend backup %q: wrote a file", tc.args)
		}
	}
	code, out, _ := tekendBackup("-help")
	if code != 0 || !strings.Contains(out, "Usage: tekend backup") || !strings.Contains(out, admin.DefaultSocket) {
		t.Errorf("tekend backup -help: exit %d\n%s", code, out)
	}
}

// The usage of tekend names the backup command and SIGHUP.
func TestUsageNamesBackupAndReload(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-help"}, &out, &out); code != 0 {
		t.Fatalf("tekend -help: exit %d", code)
	}
	for _, want := range []string{"backup FILE", "SIGHUP", "systemctl reload tekend"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage does not say %q:\n%s", want, out.String())
		}
	}
}
