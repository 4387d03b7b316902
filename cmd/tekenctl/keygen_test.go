package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/tekenid/teken/internal/ctl"
)

// TestKeygen: keygen writes a private key only it can read and a public
// key, creates no directory and overwrites nothing, leaving nothing behind
// when it refuses.
func TestKeygen(t *testing.T) {
	kid := regexp.MustCompile(`^[A-Za-z0-9_-]{43}\n$`)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, dir string) // files there before
		out      string                         // --out, under the test's directory
		key, pub string                         // files written, or "" when refused
		err      string
	}{
		{name: "prefix", out: "dispatcher", key: "dispatcher.key", pub: "dispatcher.pub"},
		{name: "prefix ending in .key", out: "central-2027.key", key: "central-2027.key", pub: "central-2027.pub"},
		{name: "in a directory", setup: mkdir("central"), out: "central/dispatcher", key: "central/dispatcher.key", pub: "central/dispatcher.pub"},
		{name: "missing directory", out: "nonexistent/dir/k", err: "directory " + filepath.Join("DIR", "nonexistent", "dir") + " does not exist (keygen creates no directories)"},
		{name: "prefix is a directory", out: "central/", setup: mkdir("central"), err: "want a file name"},
		{name: "parent is a file", setup: write("plain", "x"), out: "plain/k", err: "is not a directory"},
		{name: "key exists", setup: write("dispatcher.key", "old key"), out: "dispatcher", err: "dispatcher.key exists: keygen never overwrites a key"},
		{name: "public key exists", setup: write("dispatcher.pub", "old key"), out: "dispatcher", err: "dispatcher.pub exists"},
		{name: "link where the key goes", setup: link("elsewhere", "dispatcher.key"), out: "dispatcher", err: "dispatcher.key exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			before := listFiles(t, dir)
			c := tekenctl(t, context.Background(), nil, "keygen", "--out", dir+string(filepath.Separator)+tc.out)
			if tc.err != "" {
				want := strings.ReplaceAll(tc.err, "DIR", dir)
				if c.code != exitFailure || c.stdout != "" || strings.Count(c.stderr, "\n") != 1 || !strings.Contains(c.stderr, want) {
					t.Fatalf("want exit 1 and one line with %q: %+v", want, c)
				}
				if after := listFiles(t, dir); after != before {
					t.Errorf("a refused keygen changed the directory:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if c.code != exitOK || !kid.MatchString(c.stdout) {
				t.Fatalf("keygen: %+v", c)
			}
			keyFile, pubFile := filepath.Join(dir, tc.key), filepath.Join(dir, tc.pub)
			assertMode(t, keyFile, 0o600)
			assertMode(t, pubFile, 0o644)
			s, err := ctl.LoadDispatcherKey(keyFile)
			if err != nil || s.KID()+"\n" != c.stdout {
				t.Errorf("key %s: %v, kid %q", keyFile, err, c.stdout)
			}
			if !strings.Contains(c.stderr, keyFile) || !strings.Contains(c.stderr, pubFile) {
				t.Errorf("stderr does not name both files: %q", c.stderr)
			}
		})
	}
}

// TestKeygenModeDespiteUmask: the modes are exact whatever the umask takes
// away (the public key stays readable for the terminal's tekend) or would
// leave (the private key stays private).
func TestKeygenModeDespiteUmask(t *testing.T) {
	for _, mask := range []int{0o177, 0o000} {
		old := syscall.Umask(mask)
		dir := t.TempDir()
		c := tekenctl(t, context.Background(), nil, "keygen", "--alg", "Ed25519", "--out", filepath.Join(dir, "k"))
		syscall.Umask(old)
		if c.code != exitOK {
			t.Fatalf("umask %04o: %+v", mask, c)
		}
		assertMode(t, filepath.Join(dir, "k.key"), 0o600)
		assertMode(t, filepath.Join(dir, "k.pub"), 0o644)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want a file with %04o", path, fi.Mode(), want)
	}
}

func mkdir(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func write(name, body string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func link(target, name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Symlink(filepath.Join(dir, target), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// listFiles describes every file under dir with its contents.
func listFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(path + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(raw))
		}
		b.WriteString("; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
