package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mosquitto is a private broker on a free 127.0.0.1 port, without
// persistence.
type Mosquitto struct {
	// URL is the address for MQTT clients: tcp://127.0.0.1:PORT, or
	// ssl://127.0.0.1:PORT when TLS is configured.
	URL  string
	Port int

	bin  string
	dir  string
	conf string
	mu   sync.Mutex
	p    *proc
}

// MosquittoOptions configures a private broker.
type MosquittoOptions struct {
	// Dir holds the configuration and the log.
	Dir string
	// TLS lines (cafile, certfile, keyfile, require_certificate, …) make
	// the listener a TLS one; they follow the listener line.
	TLS []string
	// Extra lines are appended to the generated configuration.
	Extra []string
}

// StartMosquitto starts a broker and waits until it accepts connections.
func StartMosquitto(opts MosquittoOptions) (*Mosquitto, error) {
	bin, err := lookSbin("mosquitto")
	if err != nil {
		return nil, err
	}
	m := &Mosquitto{bin: bin, dir: opts.Dir, conf: filepath.Join(opts.Dir, "mosquitto.conf")}
	var lastErr error
	for range 5 {
		if m.Port, err = FreePorts(1); err != nil {
			return nil, err
		}
		if err := os.WriteFile(m.conf, []byte(m.config(opts)), 0o644); err != nil {
			return nil, err
		}
		if lastErr = m.start(); lastErr == nil {
			scheme := "tcp"
			if len(opts.TLS) > 0 {
				scheme = "ssl"
			}
			m.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.Port)
			return m, nil
		}
	}
	return nil, fmt.Errorf("start mosquitto: %w", lastErr)
}

func (m *Mosquitto) config(opts MosquittoOptions) string {
	var lines []string
	if os.Geteuid() == 0 {
		// Keep root, or the broker cannot read files in private
		// temporary directories after it drops privileges.
		lines = append(lines, "user root")
	}
	lines = append(lines,
		"per_listener_settings false",
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
		"max_queued_messages 100000",
		"listener "+strconv.Itoa(m.Port)+" 127.0.0.1",
	)
	lines = append(lines, opts.TLS...)
	lines = append(lines, opts.Extra...)
	return strings.Join(lines, "\n") + "\n"
}

func (m *Mosquitto) start() error {
	p, err := startProc(m.dir, "mosquitto", m.bin, "-c", m.conf)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	err = WaitFor(context.Background(), 10*time.Second, func() error {
		if err := p.running(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		p.stop(time.Second)
		return fmt.Errorf("mosquitto not ready on %s: %w", addr, err)
	}
	m.mu.Lock()
	m.p = p
	m.mu.Unlock()
	return nil
}

// Stop ends the broker. Without persistence it forgets every session and
// queued message, as a broker that lost its state would.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	p := m.p
	m.p = nil
	m.mu.Unlock()
	if p != nil {
		p.stop(5 * time.Second)
	}
}

// Freeze stops the broker process (SIGSTOP) without closing its sockets:
// connections stay open and nothing is answered, as with a broker that
// hangs. Thaw lets it run again.
func (m *Mosquitto) Freeze() error { return m.signal(syscall.SIGSTOP) }

// Thaw undoes Freeze.
func (m *Mosquitto) Thaw() error { return m.signal(syscall.SIGCONT) }

func (m *Mosquitto) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return errors.New("mosquitto is not running")
	}
	return m.p.cmd.Process.Signal(sig)
}

// Restart stops the broker and starts it again on the same port.
func (m *Mosquitto) Restart() error {
	m.Stop()
	return m.start()
}

// Log returns the end of the broker's log.
func (m *Mosquitto) Log() string { return tail(filepath.Join(m.dir, "mosquitto.log")) }

// lookSbin finds a program on PATH or in the sbin directories, which a
// non-root PATH often lacks.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name), nil
		}
	}
	return "", fmt.Errorf("%s not found (make deps installs it)", name)
}
