package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tekenid/teken/internal/sandbox"
)

// SocketEnv names the environment variable libpcsclite reads for the path of
// pcscd's socket.
const SocketEnv = sandbox.SocketEnv

// PCSCD is a private pcscd of the test (see sandbox.PCSCD), or the system
// pcscd when the test does not run as root.
type PCSCD struct {
	*sandbox.PCSCD
	system bool
	port   int
}

// libpcsclite caches the socket path the first time a process connects
// (getSocketName in winscard_msg.c), so every private pcscd of one test
// process serves the same path, and only one runs at a time.
var (
	pcscdMu     sync.Mutex
	pcscdRunDir = filepath.Join(os.TempDir(), "teken-pcscd-"+strconv.Itoa(os.Getpid()))
)

// StartPCSCD starts a pcscd of the test's own with the vpcd driver and
// points this process's PC/SC clients at it; it stops when the test ends. As
// root it runs beside any system pcscd, in private mount and network
// namespaces, its readers reached through forwarders on free 127.0.0.1
// ports (see sandbox.PCSCD). Without root it falls back to the system pcscd
// when that is reachable and has vpcd on its default port; otherwise the
// test is skipped (failed in CI). Tests that use it cannot run in parallel.
func StartPCSCD(t testing.TB) *PCSCD {
	t.Helper()
	LookPath(t, "pcscd")
	if _, err := os.Stat(sandbox.VPCDDriver); err != nil {
		Unavailable(t, "vpcd reader driver %s missing (package vsmartcard-vpcd)", sandbox.VPCDDriver)
	}
	if os.Geteuid() != 0 {
		return systemPCSCD(t)
	}
	LookPath(t, "unshare")
	LookPath(t, "ip")
	pcscdMu.Lock()
	d, err := sandbox.StartPCSCD(sandbox.PCSCDOptions{RunDir: pcscdRunDir, Dir: t.TempDir()})
	if err != nil {
		pcscdMu.Unlock()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		os.RemoveAll(pcscdRunDir)
		pcscdMu.Unlock()
	})
	t.Setenv(SocketEnv, d.Socket)
	return &PCSCD{PCSCD: d}
}

// VPCDAddr is the address a software token dials to sit in virtual reader i.
func (d *PCSCD) VPCDAddr(i int) string {
	if d.system {
		return "127.0.0.1:" + strconv.Itoa(d.port+i)
	}
	return d.PCSCD.VPCDAddr(i)
}

// VPCDPort is the port vpcd listens on for reader i: inside the private
// pcscd's network namespace, or the system vpcd's on the host.
func (d *PCSCD) VPCDPort(i int) int {
	if d.system {
		return d.port + i
	}
	return d.PCSCD.VPCDPort(i)
}

// Stop, Kill and Restart act on a private pcscd only.
func (d *PCSCD) Stop() {
	if !d.system {
		d.PCSCD.Stop()
	}
}

// Kill ends a private pcscd with SIGKILL.
func (d *PCSCD) Kill() {
	if !d.system {
		d.PCSCD.Kill()
	}
}

// Restart starts a private pcscd again on the same ports and socket.
func (d *PCSCD) Restart() error {
	if d.system {
		return errSystemPCSCD
	}
	return d.PCSCD.Restart()
}

// Log returns the end of pcscd's log.
func (d *PCSCD) Log() string {
	if d.system {
		return "(system pcscd: see its journal)"
	}
	return d.PCSCD.Log()
}

type constError string

func (e constError) Error() string { return string(e) }

const errSystemPCSCD = constError("cannot restart the system pcscd from a test")

// systemPCSCD uses the machine's own pcscd, whose vpcd listens on the
// vsmartcard default port 0x8C7B (35963).
func systemPCSCD(t testing.TB) *PCSCD {
	t.Helper()
	const sock, port = "/run/pcscd/pcscd.comm", 0x8C7B
	if _, err := os.Stat(sock); err != nil {
		Unavailable(t, "not root, and no system pcscd at %s", sock)
	}
	ok, err := sandbox.TCPListening(port)
	if err != nil || !ok {
		Unavailable(t, "not root, and the system pcscd has no vpcd on port %d", port)
	}
	t.Log("not root: using the system pcscd")
	return &PCSCD{
		PCSCD:  &sandbox.PCSCD{Socket: sock, Readers: []string{"Virtual PCD 00 00", "Virtual PCD 00 01"}},
		system: true, port: port,
	}
}
