package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NATS is a private nats-server with JetStream and an MQTT listener, both
// on free 127.0.0.1 ports. Its JetStream store, which holds the MQTT
// sessions, their queued messages and the retained messages, lives under
// its directory and survives Stop, Kill and Restart.
type NATS struct {
	// URL is the address for MQTT clients: tcp://127.0.0.1:PORT.
	URL string
	// Port is the MQTT listener's port.
	Port int
	// ClientPort is the port of the NATS protocol listener, which the
	// server cannot do without.
	ClientPort int

	bin  string
	dir  string
	conf string
	mu   sync.Mutex
	p    *proc
}

// NATSOptions configures a private nats-server.
type NATSOptions struct {
	// Dir holds the configuration, the log and the JetStream store.
	Dir string
	// MQTT lines go inside the generated mqtt { } block, after host and
	// port: "max_ack_pending: 100", "ack_wait: \"30s\"".
	MQTT []string
	// Extra lines are appended to the generated configuration at the top
	// level: "max_payload: 262144", "max_pending: 67108864".
	Extra []string
}

// StartNATS starts a nats-server and waits until its MQTT listener answers a
// CONNECT, which it does only once JetStream is up.
func StartNATS(opts NATSOptions) (*NATS, error) {
	bin, err := lookSbin("nats-server")
	if err != nil {
		return nil, err
	}
	n := &NATS{bin: bin, dir: opts.Dir, conf: filepath.Join(opts.Dir, "nats-server.conf")}
	var lastErr error
	for range 5 {
		if n.ClientPort, err = FreePorts(2); err != nil {
			return nil, err
		}
		n.Port = n.ClientPort + 1
		if err := os.WriteFile(n.conf, []byte(n.config(opts)), 0o644); err != nil {
			return nil, fmt.Errorf("write nats-server configuration: %w", err)
		}
		if lastErr = n.start(); lastErr == nil {
			n.URL = fmt.Sprintf("tcp://127.0.0.1:%d", n.Port)
			return n, nil
		}
	}
	return nil, fmt.Errorf("start nats-server: %w", lastErr)
}

func (n *NATS) config(opts NATSOptions) string {
	// Without an http or monitor_port line the server has no monitoring
	// listener; without cluster, gateway and leafnodes blocks it opens no
	// route, gateway or leafnode port. MQTT refuses to start without a
	// server_name (server/mqtt.go validateMQTTOptions).
	lines := []string{
		fmt.Sprintf("server_name: teken-sandbox-%d", n.ClientPort),
		"host: 127.0.0.1",
		"port: " + strconv.Itoa(n.ClientPort),
		"jetstream {",
		"  store_dir: " + strconv.Quote(filepath.Join(n.dir, "jetstream")),
		"}",
		"mqtt {",
		"  host: 127.0.0.1",
		"  port: " + strconv.Itoa(n.Port),
	}
	for _, l := range opts.MQTT {
		lines = append(lines, "  "+l)
	}
	lines = append(lines, "}")
	lines = append(lines, opts.Extra...)
	return strings.Join(lines, "\n") + "\n"
}

func (n *NATS) start() error {
	p, err := startProc(n.dir, "nats-server", n.bin, "-c", n.conf)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(n.Port)
	err = WaitFor(context.Background(), 30*time.Second, func() error {
		if err := p.running(); err != nil {
			return err
		}
		return probeMQTT(addr)
	})
	if err != nil {
		p.stop(time.Second)
		return fmt.Errorf("nats-server not ready on %s: %w", addr, err)
	}
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
	return nil
}

// Stop ends the server with SIGTERM, which lets JetStream close its store.
// The store stays, so a start after Stop has the sessions back.
func (n *NATS) Stop() {
	if p := n.take(); p != nil {
		p.stop(10 * time.Second)
	}
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would, and
// leaves the store as the crash left it.
func (n *NATS) Kill() {
	if p := n.take(); p != nil {
		p.kill()
	}
}

func (n *NATS) take() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.p
	n.p = nil
	return p
}

// Restart stops the server if it runs and starts it again on the same ports
// with the same JetStream store.
func (n *NATS) Restart() error {
	n.Stop()
	if err := n.start(); err != nil {
		return fmt.Errorf("restart nats-server: %w", err)
	}
	return nil
}

// Log returns the end of the server's log.
func (n *NATS) Log() string { return tail(filepath.Join(n.dir, "nats-server.log")) }

// probeMQTT opens an MQTT 3.1.1 connection to addr with a clean session and
// closes it again, and fails unless the broker accepted it (CONNACK return
// code 0, MQTT 3.1.1 §3.2.2.3). An open port alone is not enough: nats-server
// and RabbitMQ listen before they can take a session.
func probeMQTT(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	const id = "teken-sandbox-probe"
	// CONNECT (§3.1): protocol name "MQTT", level 4, flags 0x02 (clean
	// session), keep-alive 10 s, then the client identifier.
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, byte(len(id))}, id...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := c.Write(pkt); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return fmt.Errorf("not a CONNACK: % x", ack)
	}
	if ack[3] != 0 {
		return fmt.Errorf("CONNACK return code %d", ack[3])
	}
	// DISCONNECT (§3.14), so that the broker ends the session cleanly.
	if _, err := c.Write([]byte{0xe0, 0}); err != nil {
		return fmt.Errorf("send DISCONNECT: %w", err)
	}
	return nil
}
