package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// VPCDDriver is the vsmartcard reader driver that pcscd loads.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// SocketEnv names the environment variable libpcsclite reads for the path of
// pcscd's socket.
const SocketEnv = "PCSCLITE_CSOCK_NAME"

// vpcdReaders is how many virtual readers one vpcd driver instance offers,
// each on its own port (VICC_MAX_SLOTS in vsmartcard's ifd-vpcd.c).
const vpcdReaders = 2

// PCSCD is a private pcscd whose virtual readers a software token reaches
// over TCP on loopback.
type PCSCD struct {
	// Socket is the path of pcscd's client socket.
	Socket string
	// Readers are the names pcscd gives the virtual readers, in port order.
	Readers []string

	t       testing.TB
	port    int
	confDir string
	runDir  string
	logDir  string
	mu      sync.Mutex
	p       *proc
}

// libpcsclite caches the socket path the first time a process connects
// (getSocketName in winscard_msg.c), so every private pcscd of one test
// process serves the same path, and only one runs at a time.
var (
	pcscdMu       sync.Mutex
	pcscdSockOnce sync.Once
	pcscdRunDir   string
)

// StartPCSCD starts a pcscd of its own with the vpcd driver on free ports and
// points this process's PC/SC clients at it. As root it runs pcscd in a
// private mount namespace with its own /run/pcscd, beside any system pcscd.
// Without root it falls back to the system pcscd when that is reachable and
// has vpcd on its default port; otherwise the test is skipped (failed in CI).
func StartPCSCD(t testing.TB) *PCSCD {
	t.Helper()
	LookPath(t, "pcscd")
	if _, err := os.Stat(VPCDDriver); err != nil {
		Unavailable(t, "vpcd reader driver %s missing (package vsmartcard-vpcd)", VPCDDriver)
	}
	if os.Geteuid() != 0 {
		return systemPCSCD(t)
	}
	LookPath(t, "unshare")

	pcscdMu.Lock()
	pcscdSockOnce.Do(func() {
		pcscdRunDir = filepath.Join(os.TempDir(), "teken-pcscd-"+strconv.Itoa(os.Getpid()))
	})
	d := &PCSCD{t: t, runDir: pcscdRunDir, logDir: t.TempDir(), confDir: t.TempDir()}
	d.Socket = filepath.Join(d.runDir, "pcscd.comm")
	t.Cleanup(func() {
		d.Stop()
		os.RemoveAll(d.runDir)
		pcscdMu.Unlock()
	})
	t.Setenv(SocketEnv, d.Socket)

	var lastErr error
	for range 5 {
		port, err := freePorts(vpcdReaders)
		if err != nil {
			t.Fatal(err)
		}
		d.port = port
		if lastErr = d.start(); lastErr == nil {
			return d
		}
	}
	t.Fatalf("start private pcscd: %v", lastErr)
	return nil
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
	script := `mount --bind "$1" /run/pcscd && exec pcscd --foreground --info -c "$2"`
	p, err := startProc(d.t, d.logDir, "pcscd", "unshare", "--mount", "--propagation", "private",
		"sh", "-c", script, "pcscd-harness", d.runDir, d.confDir)
	if err != nil {
		return err
	}
	ready := func() error {
		if err := p.running(); err != nil {
			return err
		}
		if _, err := os.Stat(d.Socket); err != nil {
			return err
		}
		for i := range vpcdReaders {
			ok, err := tcpListening(d.port + i)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("vpcd not yet listening on port %d", d.port+i)
			}
		}
		return nil
	}
	if err := WaitFor(context.Background(), 10*time.Second, ready); err != nil {
		p.stop(time.Second)
		return fmt.Errorf("pcscd not ready: %w", err)
	}
	d.mu.Lock()
	d.p = p
	d.mu.Unlock()
	d.Readers = make([]string, vpcdReaders)
	for i := range vpcdReaders {
		d.Readers[i] = fmt.Sprintf("Virtual PCD 00 %02d", i)
	}
	return nil
}

// VPCDAddr is the address a software token dials to sit in virtual reader i.
func (d *PCSCD) VPCDAddr(i int) string {
	return "127.0.0.1:" + strconv.Itoa(d.port+i)
}

// Stop ends pcscd, as an administrator's restart or a crash would.
func (d *PCSCD) Stop() {
	d.mu.Lock()
	p := d.p
	d.p = nil
	d.mu.Unlock()
	if p != nil {
		p.stop(5 * time.Second)
	}
}

// Kill ends pcscd with SIGKILL.
func (d *PCSCD) Kill() {
	d.mu.Lock()
	p := d.p
	d.p = nil
	d.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart starts pcscd again on the same ports and socket after Stop or Kill.
func (d *PCSCD) Restart() error {
	if d.confDir == "" {
		return errors.New("cannot restart the system pcscd from a test")
	}
	d.Stop()
	return d.start()
}

// Log returns the end of pcscd's log, for failure messages.
func (d *PCSCD) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p == nil {
		b, _ := os.ReadFile(filepath.Join(d.logDir, "pcscd.log"))
		return string(b)
	}
	return d.p.log()
}

// systemPCSCD uses the machine's own pcscd, whose vpcd listens on the
// vsmartcard default port 0x8C7B (35963).
func systemPCSCD(t testing.TB) *PCSCD {
	t.Helper()
	const sock, port = "/run/pcscd/pcscd.comm", 0x8C7B
	if _, err := os.Stat(sock); err != nil {
		Unavailable(t, "not root, and no system pcscd at %s", sock)
	}
	ok, err := tcpListening(port)
	if err != nil || !ok {
		Unavailable(t, "not root, and the system pcscd has no vpcd on port %d", port)
	}
	t.Log("not root: using the system pcscd")
	return &PCSCD{Socket: sock, Readers: []string{"Virtual PCD 00 00", "Virtual PCD 00 01"}, t: t, port: port}
}
