package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// VPCDDriver is the vsmartcard reader driver that pcscd loads.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// SocketEnv names the environment variable libpcsclite reads for the path of
// pcscd's socket.
const SocketEnv = "PCSCLITE_CSOCK_NAME"

// VPCDReaders is how many virtual readers one vpcd driver instance offers,
// each on its own port (VICC_MAX_SLOTS in vsmartcard's ifd-vpcd.c).
const VPCDReaders = 2

// PCSCD is a private pcscd whose virtual readers a software token reaches
// over TCP on loopback.
//
// vpcd listens on every address (opensock in vsmartcard's vpcd.c binds
// INADDR_ANY, and nothing configures that), so whoever can reach the port
// could put a card of their own into the reader. pcscd therefore runs in a
// network namespace of its own, in which only lo exists and which nothing
// outside can reach; for each reader a forwarder on the host's 127.0.0.1
// carries a card's connection in.
type PCSCD struct {
	// Socket is the path of pcscd's client socket; clients find it through
	// the environment variable SocketEnv.
	Socket string
	// Readers are the names pcscd gives the virtual readers, in port order.
	Readers []string

	port     int   // vpcd's first port, inside pcscd's network namespace
	fwdPorts []int // the forwarders' ports on 127.0.0.1, kept across Restart
	ip       string
	confDir  string
	runDir   string
	logDir   string
	mu       sync.Mutex
	run      *pcscdRun
}

// pcscdRun is one life of pcscd: the process and the forwarders into its
// network namespace, which dies with it.
type pcscdRun struct {
	p   *proc
	fwd *forwarder
}

// PCSCDOptions places a private pcscd's files.
type PCSCDOptions struct {
	// RunDir holds the socket; it is bind-mounted over /run/pcscd in the
	// daemon's own mount namespace.
	RunDir string
	// Dir holds the reader configuration and the log.
	Dir string
}

// StartPCSCD starts pcscd with the vpcd driver, in private mount and
// network namespaces with its own /run/pcscd, beside any system pcscd, and
// a forwarder per reader on a free 127.0.0.1 port. It needs root (for the
// namespaces).
func StartPCSCD(opts PCSCDOptions) (*PCSCD, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private pcscd needs root (mount and network namespaces)")
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return nil, fmt.Errorf("vpcd reader driver missing (package vsmartcard-vpcd): %w", err)
	}
	ip, err := lookSbin("ip")
	if err != nil {
		return nil, fmt.Errorf("%w (package iproute2)", err)
	}
	d := &PCSCD{ip: ip, runDir: opts.RunDir, logDir: opts.Dir, confDir: filepath.Join(opts.Dir, "reader.conf.d")}
	d.Socket = filepath.Join(d.runDir, "pcscd.comm")
	if err := os.MkdirAll(d.confDir, 0o755); err != nil {
		return nil, err
	}
	d.fwdPorts = make([]int, VPCDReaders) // 0: the first start picks them
	var lastErr error
	for range 5 {
		// The namespace has ports of its own, but ones free on the host
		// too mean that a vpcd listening on the host again would be
		// seen there (the tests look), not mistaken for something else.
		port, err := FreePorts(VPCDReaders)
		if err != nil {
			return nil, err
		}
		d.port = port
		if lastErr = d.start(); lastErr == nil {
			return d, nil
		}
	}
	return nil, fmt.Errorf("start private pcscd: %w", lastErr)
}

func (d *PCSCD) start() error {
	if err := os.MkdirAll(d.runDir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(d.Socket)
	conf := fmt.Sprintf("FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n", d.port, VPCDDriver, d.port)
	if err := os.WriteFile(filepath.Join(d.confDir, "vpcd"), []byte(conf), 0o644); err != nil {
		return err
	}
	// /run/pcscd is fixed in pcscd; a private mount namespace gives this
	// pcscd its own without touching the system one.
	if err := os.MkdirAll("/run/pcscd", 0o755); err != nil {
		return fmt.Errorf("create /run/pcscd mount point: %w", err)
	}
	// The new network namespace has only lo, and down: vpcd's listeners
	// on 0.0.0.0 are reachable from inside it alone, through lo, which is
	// how the forwarders dial them. unshare without --fork and sh's exec
	// leave pcscd with the pid of the process started here, so
	// /proc/PID/ns/net and /proc/PID/net are pcscd's.
	script := `"$3" link set lo up && mount --bind "$1" /run/pcscd && exec pcscd --foreground --info -c "$2"`
	p, err := startProc(d.logDir, "pcscd", "unshare", "--mount", "--propagation", "private", "--net",
		"sh", "-c", script, "pcscd-sandbox", d.runDir, d.confDir, d.ip)
	if err != nil {
		return err
	}
	pid := p.cmd.Process.Pid
	procNet := "/proc/" + strconv.Itoa(pid) + "/net"
	var ns *os.File
	ready := func() error {
		if err := p.running(); err != nil {
			return err
		}
		if ns == nil {
			// Before unshare has run, /proc/PID/net would show the
			// host's sockets; afterwards the namespace stays.
			f, err := openNetns(pid)
			if err != nil {
				return err
			}
			ns = f
		}
		if _, err := os.Stat(d.Socket); err != nil {
			return err
		}
		for i := range VPCDReaders {
			ok, err := tcpListening(procNet, d.port+i)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("vpcd not yet listening on port %d", d.port+i)
			}
		}
		// Not yet reaped, so the pid, and the namespace opened by it,
		// are still pcscd's.
		return p.running()
	}
	if err := WaitFor(context.Background(), 10*time.Second, ready); err != nil {
		if ns != nil {
			ns.Close()
		}
		p.stop(time.Second)
		return fmt.Errorf("pcscd not ready: %w", err)
	}
	targets := make([]string, VPCDReaders)
	for i := range targets {
		targets[i] = "127.0.0.1:" + strconv.Itoa(d.port+i)
	}
	fwd, err := startForwarder(ns, d.fwdPorts, targets, filepath.Join(d.logDir, "pcscd.log"))
	if err != nil {
		p.stop(time.Second)
		return err
	}
	for i := range d.fwdPorts {
		if d.fwdPorts[i] == 0 { // written once, so VPCDAddr needs no lock
			d.fwdPorts[i] = fwd.port(i)
		}
	}
	d.mu.Lock()
	d.run = &pcscdRun{p: p, fwd: fwd}
	d.mu.Unlock()
	d.Readers = make([]string, VPCDReaders)
	for i := range VPCDReaders {
		d.Readers[i] = fmt.Sprintf("Virtual PCD 00 %02d", i)
	}
	return nil
}

// VPCDAddr is the address a software token dials to sit in virtual reader i:
// its forwarder on 127.0.0.1. It stays the same across Restart, and is
// refused while pcscd is down, as vpcd's own port would be.
func (d *PCSCD) VPCDAddr(i int) string {
	return "127.0.0.1:" + strconv.Itoa(d.fwdPorts[i])
}

// VPCDPort is the port vpcd listens on for reader i inside pcscd's network
// namespace, which nothing outside reaches; tests check that it is not
// reachable from the host.
func (d *PCSCD) VPCDPort(i int) int { return d.port + i }

// Stop ends pcscd, as an administrator's restart would.
func (d *PCSCD) Stop() {
	if r := d.take(); r != nil {
		r.p.stop(5 * time.Second)
		r.fwd.close()
	}
}

// Kill ends pcscd with SIGKILL, as a crash would.
func (d *PCSCD) Kill() {
	if r := d.take(); r != nil {
		// pcscd first, so that a card in a reader is cut off by the
		// crash, not removed by the forwarder just before it.
		r.p.kill()
		r.fwd.close()
	}
}

func (d *PCSCD) take() *pcscdRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.run
	d.run = nil
	return r
}

// Restart starts pcscd again on the same ports and socket after Stop or Kill,
// in a new network namespace (the old one ended with pcscd), with the
// forwarders listening again on the ports VPCDAddr names; like vpcd's ports
// before, it fails if something else has taken one meanwhile.
func (d *PCSCD) Restart() error {
	d.Stop()
	return d.start()
}

// Log returns the end of pcscd's log.
func (d *PCSCD) Log() string {
	return tail(filepath.Join(d.logDir, "pcscd.log"))
}
