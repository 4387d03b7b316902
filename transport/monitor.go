package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Monitor is a clean-session client that subscribes to topic filters and
// hands every message to a function: the broker keeps nothing for it once
// it leaves, so a monitor that is not running collects nothing. tekenctl
// fleet watches status messages through one (see Fleet), and the tests tap
// the whole wire with one. It shares the terminal's session code: the
// subscriptions are renewed after every reconnect and a refused
// subscription (SUBACK 0x80) is an error, not silence.
type Monitor struct {
	s     *session
	ready chan struct{}
}

// MonitorConfig configures OpenMonitor.
type MonitorConfig struct {
	Connection
	// Filters are the topic filters to subscribe to at QoS 1.
	Filters []string
	// Handle sees every message, in arrival order, on one goroutine. It
	// must not block for long: later messages wait behind it.
	Handle func(Message)
}

// Message is one message a Monitor received.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// OpenMonitor connects, subscribes and returns once the broker granted
// the subscriptions, so retained messages are on their way. Unlike the
// terminal and the dispatcher, it fails fast: when the first connection
// attempt fails, OpenMonitor returns that error instead of retrying, since
// a person at a prompt is waiting. Later connection losses are retried.
func OpenMonitor(ctx context.Context, cfg MonitorConfig) (*Monitor, error) {
	if len(cfg.Filters) == 0 {
		return nil, errors.New("open monitor: no topic filter")
	}
	if cfg.Handle == nil {
		return nil, errors.New("open monitor: no handler")
	}
	m := &Monitor{ready: make(chan struct{})}
	var err error
	m.s, err = newSession(cfg.Connection, sessionConfig{
		filters: cfg.Filters,
		clean:   true,
		handle: func(_ context.Context, msg paho.Message) (func(), error) {
			cfg.Handle(Message{Topic: msg.Topic(), Payload: msg.Payload(), QoS: msg.Qos(), Retained: msg.Retained()})
			return nil, nil
		},
		onUp: func(context.Context, bool) {
			select {
			case <-m.ready:
			default:
				close(m.ready)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open monitor: %w", err)
	}
	m.s.start()
	fail := func(err error) (*Monitor, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = m.s.stop(cctx)
		return nil, err
	}
	select {
	case <-m.s.attempted:
	case <-ctx.Done():
		return fail(fmt.Errorf("open monitor: %w", ctx.Err()))
	}
	select {
	case <-m.ready:
		return m, nil
	default:
	}
	// Refused at connect, or its subscriptions refused (which dropped the
	// connection and recorded why).
	if err := m.s.err(); err != nil {
		return fail(fmt.Errorf("open monitor: %w", err))
	}
	return fail(errors.New("open monitor: the first connection ended without subscriptions"))
}

// Publish sends one QoS 1 message and waits for the broker's PUBACK. It
// exists for tools and tests that must speak as someone else on the wire
// (a forged envelope, a broker replaying bytes); the terminal and the
// dispatcher publish only their own messages.
func (m *Monitor) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	if err := m.s.publish(ctx, topic, payload, retained); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Close disconnects and waits for the monitor's goroutines.
func (m *Monitor) Close(ctx context.Context) error { return m.s.stop(ctx) }

// ClearSession removes a client's persistent session from the broker: a
// clean-session connect under the same client id discards it (MQTT 3.1.1
// §3.1.2.4). A one-off tool that used a Dispatcher calls it after Close, so
// it leaves no session behind collecting messages.
func ClearSession(ctx context.Context, c Connection) error {
	if err := c.validate(); err != nil {
		return err
	}
	o := c.options().SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false)
	cl := paho.NewClient(o)
	if err := wait(ctx, cl.Connect()); err != nil {
		return fmt.Errorf("clear session %s: %w", c.ClientID, err)
	}
	cl.Disconnect(100)
	return nil
}
