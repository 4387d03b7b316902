package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// proc is a child process owned by a sandbox component: its output goes to
// a log file, and stop ends it and reaps it.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // valid after exited is closed
}

func startProc(logDir, name string, argv ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = childEnv()
	// Its own process group, so stop can end anything it spawned, and
	// Pdeathsig so a crashed parent does not leave it behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	waited, err := StartHeld(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = <-waited
		close(p.exited)
	}()
	return p, nil
}

// StartHeld starts cmd and reaps it from one goroutine locked to its
// thread until then, and returns what Wait returned on a channel. A
// Pdeathsig set on cmd comes when the thread that forked the child ends,
// not the process (go.dev/issue/27505), and the runtime ends a thread
// whose goroutine exits locked to it; forking from a thread held until the
// child is reaped makes the signal mean what it is for: this process died.
func StartHeld(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// running reports a permanent error if the process has already exited.
func (p *proc) running() error {
	select {
	case <-p.exited:
		return Permanent(fmt.Errorf("%s exited: %v; log:\n%s", filepath.Base(p.cmd.Path), p.err, p.log()))
	default:
		return nil
	}
}

func (p *proc) log() string { return tail(p.logPath) }

// tail returns the last 8 KiB of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(b) > max {
		b = append([]byte("…"), b[len(b)-max:]...)
	}
	return string(b)
}

// stop sends SIGTERM to the process group, waits up to grace for the exit,
// then sends SIGKILL. It is safe to call more than once.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	pgid := -p.cmd.Process.Pid
	if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("terminate: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-p.exited
	return nil
}

// kill ends the process at once with SIGKILL, as a crash or an OOM kill would.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// childEnv is this process's environment without the systemd notification
// variables: a sandboxed pcscd or broker must not speak to the service
// manager of the process that started it (pcscd sends READY=1 on its own).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
