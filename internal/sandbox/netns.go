package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// openNetns opens the network namespace of process pid and checks that it
// is not this process's own: until unshare(1) has made the call, its
// /proc/PID/ns/net still names the host's namespace.
func openNetns(pid int) (*os.File, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, err
	}
	same, err := sameNetns(f)
	if err != nil || same {
		f.Close()
		if err == nil {
			err = errors.New("not yet in a network namespace of its own")
		}
		return nil, err
	}
	return f, nil
}

// sameNetns reports whether ns is the network namespace this process's
// /proc/self/ns/net names. /proc/self is the main thread, which inNetns
// never moves.
func sameNetns(ns *os.File) (bool, error) {
	a, err := ns.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// inNetns runs fn on an OS thread that is in the network namespace ns for
// the time, so that the sockets fn creates belong to ns; a socket keeps its
// namespace for life and may then be used from any goroutine. fn must not
// hand socket creation to other goroutines, which run on other threads.
//
// setns(2) moves only the calling thread, so the goroutine is locked to it
// (runtime.LockOSThread), and the runtime clones no new threads off a locked
// one (golang/go#20676). Afterwards the thread goes back to its own
// namespace and is unlocked, rather than being left locked so that the
// runtime ends it with the goroutine (golang/go#20395): a thread's end
// delivers Pdeathsig to every child it forked (go.dev/issue/27505), and
// this process's threads have started children with Pdeathsig (proc.go,
// and tekend in internal/demo). Only if the way back fails does the thread
// stay locked and die, as then it must.
func inNetns(ns *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: /proc/self and /proc/net follow it, so
			// even a moment in another namespace would show another
			// namespace's tables to this process. Holding it locked
			// here, hand the work to a goroutine, which therefore runs
			// on another thread.
			errc <- inNetns(ns, fn)
			runtime.UnlockOSThread()
			return
		}
		errc <- onThreadInNetns(ns, fn)
	}()
	return <-errc
}

// onThreadInNetns is inNetns on the locked thread; it unlocks the thread
// unless the thread could not return to its own namespace.
func onThreadInNetns(ns *os.File, fn func() error) error {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer home.Close()
	if err := setns(ns); err != nil {
		runtime.UnlockOSThread() // a failed setns moves nothing
		return err
	}
	ferr := fn()
	if err := setns(home); err != nil {
		return fmt.Errorf("return to own network namespace (thread retired): %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(ns *os.File) error {
	rc, err := ns.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Setns(int(fd), unix.CLONE_NEWNET) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setns: %w", serr)
	}
	return nil
}
