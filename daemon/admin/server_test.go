package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

var quiet = slog.New(slog.DiscardHandler)

const signer = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// openStore opens a store in a test directory holding n jobs.
func openStore(t *testing.T, n int) *queue.Store {
	t.Helper()
	s, err := queue.Open(filepath.Join(t.TempDir(), "tekend.db"), queue.Options{
		TerminalID: "kendari-setda-01", Logger: quiet, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	for i := range n {
		insert(t, s, fmt.Sprintf("job-%04d", i))
	}
	return s
}

func insert(t testing.TB, s *queue.Store, id string) {
	t.Helper()
	env := bytes.Repeat([]byte(id), 200)
	_, _, err := s.Insert(context.Background(), queue.Job{ID: id, Signer: signer, Envelope: env,
		Digests: []queue.Digest{sha256.Sum256(env)}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Error(err)
	}
}

// serve runs a server for store on a socket in a test directory until the
// test ends.
func serve(t *testing.T, store admin.Store, opts admin.ServerOptions) *admin.Server {
	t.Helper()
	opts.Store = store
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := admin.Listen(filepath.Join(t.TempDir(), "tekend.sock"), opts)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv
}

// A backup taken while jobs go on arriving is one moment of the store: every
// job in it has its audit entry, and the chain holds.
func TestBackupWhileJobsArrive(t *testing.T) {
	store := openStore(t, 200)
	srv := serve(t, store, admin.ServerOptions{})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var inserted int
	wg.Go(func() {
		for ; ctx.Err() == nil; inserted++ {
			insert(t, store, fmt.Sprintf("late-%05d", inserted))
		}
	})
	// Three copies while the inserts go on, each a store of its own.
	var sizes []int
	for i := range 3 {
		path := filepath.Join(t.TempDir(), "copy.db")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := admin.Backup(context.Background(), srv.Path(), f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		if fi, _ := os.Stat(path); fi.Size() != n {
			t.Fatalf("backup %d: %d bytes returned, %d in the file", i, n, fi.Size())
		}
		sizes = append(sizes, checkCopy(t, path))
	}
	stop()
	wg.Wait()
	if inserted == 0 {
		t.Fatal("no job arrived during the backups")
	}
	t.Logf("%d jobs arrived during the backups; the copies hold %v", inserted, sizes)
}

// checkCopy opens a copy as `tekenctl audit` does and returns its jobs: one
// audit entry (received) per job, and the chain verifies.
func checkCopy(t *testing.T, path string) int {
	t.Helper()
	c, err := queue.OpenReadOnly(path, queue.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer c.Close(context.Background())
	entries, err := c.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("audit chain of the copy: %v", err)
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jobs := st.Jobs[queue.Received]
	if jobs < 200 || uint64(jobs) != entries {
		t.Fatalf("the copy holds %d jobs and %d audit entries; want one entry per job, at least 200", jobs, entries)
	}
	return jobs
}

func TestBackupRefusedToAPeerNotAllowed(t *testing.T) {
	var asked []uint32
	var mu sync.Mutex
	srv := serve(t, openStore(t, 1), admin.ServerOptions{Allow: func(uid uint32) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, uid)
		return false
	}})
	var out bytes.Buffer
	_, err := admin.Backup(context.Background(), srv.Path(), &out)
	if !errors.Is(err, admin.ErrRefused) {
		t.Fatalf("backup: %v, want ErrRefused", err)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes written after a refusal", out.Len())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != uint32(os.Geteuid()) {
		t.Errorf("Allow asked about %v, want this process's uid %d", asked, os.Geteuid())
	}
}

func TestRootOrSelf(t *testing.T) {
	self := uint32(os.Geteuid())
	if !admin.RootOrSelf(0) || !admin.RootOrSelf(self) {
		t.Error("root or this user refused")
	}
	if other := self + 1; other != 0 && admin.RootOrSelf(other) {
		t.Errorf("uid %d allowed", other)
	}
}

func TestBackupWithoutTekend(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	_, err := admin.Backup(context.Background(), filepath.Join(dir, "missing.sock"), &out)
	if !errors.Is(err, admin.ErrNotRunning) || !strings.Contains(err.Error(), "is tekend running?") {
		t.Errorf("no socket: %v, want ErrNotRunning saying what to check", err)
	}
	// A socket a killed tekend left: nobody listens.
	stale := filepath.Join(dir, "stale.sock")
	leaveSocket(t, stale)
	if _, err := admin.Backup(context.Background(), stale, &out); !errors.Is(err, admin.ErrNotRunning) {
		t.Errorf("stale socket: %v, want ErrNotRunning", err)
	}
	// The next tekend takes its place.
	srv, err := admin.Listen(stale, admin.ServerOptions{Store: openStore(t, 1), Logger: quiet})
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	srv.Close(context.Background())
}

// leaveSocket makes a socket at path that nobody listens on.
func leaveSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func TestListenRefusesWhatIsNotItsToTake(t *testing.T) {
	srv := serve(t, openStore(t, 1), admin.ServerOptions{})
	if _, err := admin.Listen(srv.Path(), admin.ServerOptions{Store: openStore(t, 0)}); err == nil || !strings.Contains(err.Error(), "another tekend") {
		t.Errorf("second listen on a live socket: %v", err)
	}
	if _, err := admin.Backup(context.Background(), srv.Path(), io.Discard); err != nil {
		t.Errorf("the first server after a second listen: %v", err)
	}
	file := filepath.Join(t.TempDir(), "tekend.sock")
	if err := os.WriteFile(file, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen(file, admin.ServerOptions{Store: openStore(t, 0)}); err == nil {
		t.Error("listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "not a socket" {
		t.Errorf("the file was replaced: %q", b)
	}
}

func TestSocketModeAndRemoval(t *testing.T) {
	srv, err := admin.Listen(filepath.Join(t.TempDir(), "tekend.sock"), admin.ServerOptions{Store: openStore(t, 0), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != admin.SocketMode {
		t.Errorf("socket mode %v, want socket %v", fi.Mode(), admin.SocketMode)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// endless is a store that writes without end and reports how it ended.
type endless struct {
	started chan struct{}
	ended   chan error
}

func newEndless() *endless {
	return &endless{started: make(chan struct{}, 4), ended: make(chan error, 4)}
}

func (e *endless) Backup(ctx context.Context, w io.Writer) (int64, error) {
	e.started <- struct{}{}
	page := make([]byte, 64<<10)
	var n int64
	for {
		k, err := w.Write(page)
		n += int64(k)
		if err != nil {
			e.ended <- err
			return n, err
		}
	}
}

// stalledClient asks for a backup and never reads the answer.
func stalledClient(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "teken-admin/1 backup\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that stops reading fails its backup within the idle timeout,
// which ends the store's read transaction; the next backup is served.
func TestStalledClientDoesNotHoldTheBackup(t *testing.T) {
	store := newEndless()
	srv := serve(t, store, admin.ServerOptions{IdleTimeout: 100 * time.Millisecond})
	stalledClient(t, srv.Path())
	<-store.started
	if err := <-store.ended; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("stalled backup ended with %v, want a deadline", err)
	}
	// The next one is served once the stalled one has given up (the
	// test cuts it short after a MiB).
	err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &cutAfter{n: 1 << 20, cancel: cancel}
		_, err := admin.Backup(ctx, srv.Path(), w)
		var se *admin.ServerError
		if errors.As(err, &se) && se.Code == admin.CodeBusy {
			return err
		}
		if w.got < w.n || !errors.Is(err, context.Canceled) {
			return testenv.Permanent(fmt.Errorf("second backup: %d bytes, %v; want %d bytes, then cancelled", w.got, err, w.n))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// cutAfter cancels the backup once n bytes arrived.
type cutAfter struct {
	n, got int
	cancel context.CancelFunc
}

func (c *cutAfter) Write(p []byte) (int, error) {
	c.got += len(p)
	if c.got >= c.n {
		c.cancel()
	}
	return len(p), nil
}

func TestOneBackupAtATime(t *testing.T) {
	store := newEndless()
	srv := serve(t, store, admin.ServerOptions{IdleTimeout: time.Hour})
	stalledClient(t, srv.Path())
	<-store.started
	_, err := admin.Backup(context.Background(), srv.Path(), io.Discard)
	var se *admin.ServerError
	if !errors.As(err, &se) || se.Code != admin.CodeBusy {
		t.Errorf("second backup: %v, want busy", err)
	}
}

// Close ends a backup in flight, even one whose client does not read and
// whose idle timeout is far away.
func TestCloseEndsBackupInFlight(t *testing.T) {
	store := newEndless()
	srv, err := admin.Listen(filepath.Join(t.TempDir(), "tekend.sock"), admin.ServerOptions{Store: store, Logger: quiet, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	stalledClient(t, srv.Path())
	<-store.started
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-store.ended; err == nil {
		t.Error("backup went on after Close")
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// Serve ends with its context as with Close.
func TestServeEndsWithContext(t *testing.T) {
	srv, err := admin.Listen(filepath.Join(t.TempDir(), "tekend.sock"), admin.ServerOptions{Store: openStore(t, 0), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	if _, err := admin.Backup(context.Background(), srv.Path(), io.Discard); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := admin.Backup(context.Background(), srv.Path(), io.Discard); !errors.Is(err, admin.ErrNotRunning) {
		t.Errorf("backup after the end: %v, want ErrNotRunning", err)
	}
}

func TestRequestsOfAnotherKind(t *testing.T) {
	srv := serve(t, openStore(t, 1), admin.ServerOptions{})
	for _, tc := range []struct{ request, code string }{
		{"teken-admin/2 backup\n", admin.CodeUnsupportedVersion},
		{"teken-admin/1 restore\n", admin.CodeUnknownCommand},
		{"GET / HTTP/1.1\r\n", admin.CodeBadRequest},
		{strings.Repeat("x", 4096) + "\n", admin.CodeBadRequest},
		{"teken-admin/1 backup", admin.CodeBadRequest}, // no LF before the client closes its side
	} {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.request)
		c.(*net.UnixConn).CloseWrite()
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if want := "teken-admin/1 error " + tc.code + " "; err != nil || !strings.HasPrefix(line, want) {
			t.Errorf("%.30q: answered %q, %v; want %q…", tc.request, line, err, want)
		}
	}
}

// A tekend that accepts and then says nothing fails the backup after the
// client's idle timeout; a backup job never hangs.
func TestSilentServerFailsTheBackup(t *testing.T) {
	admin.SetClientIdle(t, 100*time.Millisecond)
	path := filepath.Join(t.TempDir(), "tekend.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	_, err = admin.Backup(context.Background(), path, io.Discard)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("backup from a silent server: %v, want a deadline", err)
	}
	(<-accepted).Close()
}
