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
type PCSCD struct {
	// Socket is the path of pcscd's client socket; clients find it through
	// the environment variable SocketEnv.
	Socket string
	// Readers are the names pcscd gives the virtual readers, in port order.
	Readers []string

	port    int
	confDir string
	runDir  string
	logDir  string
	mu      sync.Mutex
	p       *proc
}

// PCSCDOptions places a private pcscd's files.
type PCSCDOptions struct {
	// RunDir holds the socket; it is bind-mounted over /run/pcscd in the
	// daemon's own mount namespace.
	RunDir string
	// Dir holds the reader configuration and the log.
	Dir string
}

// StartPCSCD starts pcscd with the vpcd driver on free ports, in a private
// mount namespace with its own /run/pcscd, beside any system pcscd. It needs
// root (for the mount namespace).
func StartPCSCD(opts PCSCDOptions) (*PCSCD, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private pcscd needs root (mount namespace)")
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return nil, fmt.Errorf("vpcd reader driver missing (package vsmartcard-vpcd): %w", err)
	}
	d := &PCSCD{runDir: opts.RunDir, logDir: opts.Dir, confDir: filepath.Join(opts.Dir, "reader.conf.d")}
	d.Socket = filepath.Join(d.runDir, "pcscd.comm")
	if err := os.MkdirAll(d.confDir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
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
	script := `mount --bind "$1" /run/pcscd && exec pcscd --foreground --info -c "$2"`
	p, err := startProc(d.logDir, "pcscd", "unshare", "--mount", "--propagation", "private",
		"sh", "-c", script, "pcscd-sandbox", d.runDir, d.confDir)
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
		for i := range VPCDReaders {
			ok, err := TCPListening(d.port + i)
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
	d.Readers = make([]string, VPCDReaders)
	for i := range VPCDReaders {
		d.Readers[i] = fmt.Sprintf("Virtual PCD 00 %02d", i)
	}
	return nil
}

// VPCDAddr is the address a software token dials to sit in virtual reader i.
func (d *PCSCD) VPCDAddr(i int) string {
	return "127.0.0.1:" + strconv.Itoa(d.port+i)
}

// Stop ends pcscd, as an administrator's restart would.
func (d *PCSCD) Stop() {
	if p := d.take(); p != nil {
		p.stop(5 * time.Second)
	}
}

// Kill ends pcscd with SIGKILL, as a crash would.
func (d *PCSCD) Kill() {
	if p := d.take(); p != nil {
		p.kill()
	}
}

func (d *PCSCD) take() *proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.p
	d.p = nil
	return p
}

// Restart starts pcscd again on the same ports and socket after Stop or Kill.
func (d *PCSCD) Restart() error {
	d.Stop()
	return d.start()
}

// Log returns the end of pcscd's log.
func (d *PCSCD) Log() string {
	return tail(filepath.Join(d.logDir, "pcscd.log"))
}
