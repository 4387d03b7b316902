package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ErrNotConnected is returned by a publish while the client has no open
// connection to the broker. The caller keeps the message and sends it again
// after the next connect.
var ErrNotConnected = errors.New("mqtt: not connected")

// ErrClosed is returned by a publish after Close.
var ErrClosed = errors.New("mqtt: closed")

// qos1 is the only QoS this contract uses: at least once, which every broker
// we aim for supports (MQTT 3.1.1 §4.3.2).
const qos1 = 1

// Connection settles how one client reaches the broker. Terminal and
// Dispatcher share it.
type Connection struct {
	// Brokers are URLs such as ssl://broker.example:8883 or
	// tcp://127.0.0.1:1883, tried in order.
	Brokers []string
	// ClientID must be stable across restarts: the broker keeps the session
	// (subscriptions and unacknowledged messages) under it.
	ClientID string
	// TLS, when set, is used for ssl:// and tls:// brokers. See TLSConfig
	// for a pinned CA and a client certificate.
	TLS                *tls.Config
	Username, Password string
	// MaxReconnectInterval caps the backoff between connection attempts;
	// zero means one minute.
	MaxReconnectInterval time.Duration
	// KeepAlive is the MQTT keep-alive; zero means 30 seconds.
	KeepAlive time.Duration
	// AnswerTimeout is how long the broker has to answer a publish
	// (PUBACK), a subscribe (SUBACK) or a keep-alive ping (PINGRESP); zero
	// means DefaultAnswerTimeout. Past it a publish fails with ErrStalled
	// and the client counts the broker as stalled (Terminal.Stalled) until
	// it answers again or the connection is made anew. A publish's time
	// counts from the call, so it includes writing the message (which paho
	// bounds by its own 10 s write timeout): a client that sends large
	// messages over a slow link needs more.
	AnswerTimeout time.Duration
	Logger        *slog.Logger
}

func (c Connection) answerTimeout() time.Duration {
	if c.AnswerTimeout <= 0 {
		return DefaultAnswerTimeout
	}
	return c.AnswerTimeout
}

// paho's handshake and write deadlines, shared by options and the stall
// watch, which tells a timed-out write or CONNACK from other failures.
const (
	connectTimeout = 10 * time.Second
	writeTimeout   = 10 * time.Second
)

func (c Connection) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("mqtt: no broker URL")
	}
	if c.ClientID == "" || len(c.ClientID) > 65535 {
		return fmt.Errorf("mqtt: client id %q: want a stable non-empty id", c.ClientID)
	}
	return nil
}

// options are the paho options every client of this package shares: who it
// is, where the broker is and how to reach it.
func (c Connection) options() *paho.ClientOptions {
	keepAlive := c.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 30 * time.Second
	}
	o := paho.NewClientOptions().
		SetClientID(c.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1 only, for NATS, RabbitMQ, EMQX
		SetKeepAlive(keepAlive).
		// paho sends a PINGREQ after KeepAlive without traffic either
		// way and drops the connection when no PINGRESP came within the
		// ping timeout (ping.go keepalive); the broker has as long to
		// answer a ping as a publish. A stalled broker that is not asked
		// anything is found this way, after KeepAlive plus this.
		SetPingTimeout(c.answerTimeout()).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetStore(newCopyingStore())
	for _, b := range c.Brokers {
		o.AddBroker(b)
	}
	if c.TLS != nil {
		o.SetTLSConfig(c.TLS)
	}
	if c.Username != "" {
		o.SetUsername(c.Username).SetPassword(c.Password)
	}
	return o
}
