package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mosquitto is a broker of the test's own on a free 127.0.0.1 port.
type Mosquitto struct {
	// URL is the address for MQTT clients: tcp://127.0.0.1:PORT or
	// ssl://127.0.0.1:PORT.
	URL  string
	Port int
	// CA, Server and Client are set for a TLS broker: the CA that issued
	// the broker's certificate and a client certificate it accepts.
	CA     *CA
	Client *KeyPair

	t    testing.TB
	dir  string
	conf string
	mu   sync.Mutex
	p    *proc
}

// MosquittoOptions selects the broker's configuration.
type MosquittoOptions struct {
	// TLS requires TLS with client certificates from a CA the harness makes.
	TLS bool
	// Extra lines are appended to the generated configuration.
	Extra []string
}

// StartMosquitto starts a plain MQTT broker without persistence.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	return StartMosquittoWith(t, MosquittoOptions{})
}

// StartMosquittoWith starts a broker with the given options and stops it when
// the test ends.
func StartMosquittoWith(t testing.TB, opt MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := LookPath(t, "mosquitto")
	m := &Mosquitto{t: t, dir: t.TempDir()}
	if opt.TLS {
		m.CA = NewCA(t, "Teken test broker CA")
		m.Client = m.CA.Client(t, "teken-test-client")
	}
	t.Cleanup(m.Stop)
	var lastErr error
	for range 5 {
		m.Port = FreePort(t)
		if err := m.writeConfig(opt); err != nil {
			t.Fatal(err)
		}
		if lastErr = m.start(bin); lastErr == nil {
			scheme := "tcp"
			if opt.TLS {
				scheme = "ssl"
			}
			m.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.Port)
			return m
		}
	}
	t.Fatalf("start mosquitto: %v", lastErr)
	return nil
}

func (m *Mosquitto) writeConfig(opt MosquittoOptions) error {
	lines := []string{
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
		"listener " + strconv.Itoa(m.Port) + " 127.0.0.1",
	}
	if os.Geteuid() == 0 {
		// Keep root, or the broker cannot read files in the test's
		// private temporary directories after it drops privileges.
		lines = append([]string{"user root"}, lines...)
	}
	if opt.TLS {
		srv := m.CA.Server(m.t)
		lines = append(lines,
			"cafile "+m.CA.CertFile,
			"certfile "+srv.CertFile,
			"keyfile "+srv.KeyFile,
			"require_certificate true",
			"tls_version tlsv1.2",
		)
	}
	lines = append(lines, opt.Extra...)
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	return os.WriteFile(m.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func (m *Mosquitto) start(bin string) error {
	p, err := startProc(m.t, m.dir, "mosquitto", bin, "-c", m.conf)
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

// Restart stops the broker and starts it again on the same port.
func (m *Mosquitto) Restart() error {
	m.Stop()
	return m.start(LookPath(m.t, "mosquitto"))
}

// Log returns the end of the broker's log.
func (m *Mosquitto) Log() string {
	b, err := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}
