package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/sandbox"
)

// Postgres is a PostgreSQL server of the test's own: a fresh cluster in a
// t.TempDir(), listening on a free 127.0.0.1 port and on a unix socket in
// that directory, with trust authentication for the superuser "postgres".
type Postgres struct {
	// DSN connects to the database "postgres" as the superuser.
	DSN string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir holds the data directory, the socket and the server's log.
	Dir string

	bin  string              // the version's bin directory
	cred *syscall.Credential // whom the server runs as; nil: as we are
	data string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid after exited is closed
	dbs    atomic.Int64
}

// StartPostgres initialises a cluster with the newest PostgreSQL of
// /usr/lib/postgresql, starts it and stops it when the test ends.
// PostgreSQL refuses to run as root, so under root it runs as the user
// "postgres" (or "nobody"), which then owns the data directory.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := postgresBin(t)
	p := &Postgres{Dir: t.TempDir(), bin: bin}
	p.data = filepath.Join(p.Dir, "data")
	if os.Geteuid() == 0 {
		cred, err := unprivileged(p.Dir)
		if err != nil {
			t.Fatalf("postgres as an unprivileged user: %v", err)
		}
		p.cred = cred
	}
	// --no-sync: the new cluster need not reach the disk before the
	// server starts, as a test's cluster need not survive the machine.
	initdb := []string{filepath.Join(bin, "initdb"), "-D", p.data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"}
	if out, err := p.command(initdb...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Port = FreePort(t)
	p.DSN = p.dsn("postgres")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// postgresBin returns the bin directory of the newest installed version,
// or calls Unavailable.
func postgresBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		Unavailable(t, "PostgreSQL not found in /usr/lib/postgresql (make deps installs it)")
	}
	// Directories are named by major version: compare them as numbers, or
	// 9.6 would come after 15.
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) < version(ok[j]) })
	return ok[len(ok)-1]
}

// unprivileged returns the credentials of the user the server runs as
// under root, and gives that user dir and a way into it: t.TempDir's
// parent is made 0700, so every directory above dir up to the system's
// temporary directory gets the search bit for others (not read: nothing
// in them is listed).
func unprivileged(dir string) (*syscall.Credential, error) {
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("no user postgres or nobody: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, fmt.Errorf("chown %s: %w", dir, err)
	}
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", d, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return nil, fmt.Errorf("chmod %s: %w", d, err)
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// command is a PostgreSQL program run as the server's user, in the C
// locale so that initdb needs no locale installed.
func (p *Postgres) command(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.Dir
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue // the caller's libpq settings are not the test's
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "LC_ALL=C", "LANG=C", "HOME="+p.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// start runs the server and waits until it accepts connections.
func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logPath := filepath.Join(p.Dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close()
	// No fsync and no full-page writes: they guard against a crash of
	// the machine, which a test's cluster need not survive. Commits still
	// wait for their WAL to reach the kernel (synchronous_commit stays
	// on), so a crash of the server alone (Kill) loses no commit.
	cmd := p.command(filepath.Join(p.bin, "postgres"), "-D", p.data,
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+p.Dir,
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a stop reaches every backend, and
	// Pdeathsig so that a crashed test does not leave it behind (Go sets
	// it after the change of user, which would clear it).
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	waited, err := sandbox.StartHeld(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		p.err = <-waited
		close(exited)
	}()
	isready := filepath.Join(p.bin, "pg_isready")
	err = WaitFor(context.Background(), 60*time.Second, func() error {
		select {
		case <-exited:
			return Permanent(fmt.Errorf("postgres exited: %v; log:\n%s", p.err, p.Log()))
		default:
		}
		out, err := p.command(isready, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port),
			"-U", "postgres", "-d", "postgres").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_isready: %v %s", err, out)
		}
		return nil
	})
	if err != nil {
		p.stopLocked(syscall.SIGKILL)
		return fmt.Errorf("postgres on port %d: %w; log:\n%s", p.Port, err, p.Log())
	}
	return nil
}

// Stop shuts the server down fast (SIGINT: open sessions are ended) and
// waits for it; it is safe to call more than once.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGINT)
}

// Kill ends the server and its backends at once, as a crash would; the
// next start recovers from the WAL.
func (p *Postgres) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGKILL)
}

func (p *Postgres) stopLocked(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = syscall.Kill(pid, sig) // the postmaster ends its backends itself
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
	if sig == syscall.SIGKILL {
		// Backends outlive a killed postmaster for a moment, holding the
		// shared memory a restart needs: end the rest of the group, and
		// wait until none of it is left.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = WaitFor(context.Background(), time.Minute, func() error {
			if err := syscall.Kill(-pid, 0); errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("processes of group %d are still running", pid)
		})
	}
}

// Restart stops the server and starts it again on the same port with the
// same data.
func (p *Postgres) Restart() error {
	p.Stop()
	return p.start()
}

// Log returns the end of the server's log.
func (p *Postgres) Log() string {
	b, err := os.ReadFile(filepath.Join(p.Dir, "postgres.log"))
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(b) > max {
		b = append([]byte("…"), b[len(b)-max:]...)
	}
	return string(b)
}

// NewDatabase creates an empty database on the server and returns its
// DSN, so that subtests sharing one server start from nothing.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", p.dbs.Add(1))
	out, err := p.command(filepath.Join(p.bin, "createdb"), "-h", "127.0.0.1",
		"-p", strconv.Itoa(p.Port), "-U", "postgres", name).CombinedOutput()
	if err != nil {
		t.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	return p.dsn(name)
}
