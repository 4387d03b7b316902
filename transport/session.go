package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	Logger    *slog.Logger
}

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
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second)
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

// will is a last-will message set at connect time.
type will struct {
	topic   string
	payload []byte
}

// session is one paho client with a persistent session (CleanSession=false,
// unless sessionConfig.clean asks otherwise), QoS 1 subscriptions renewed on every connect, and manual acknowledgements
// sent in arrival order by one goroutine after the message was handled.
type session struct {
	client  paho.Client
	log     *slog.Logger
	filters map[string]byte
	handle  func(ctx context.Context, m paho.Message) error
	onUp    func(ctx context.Context) // after the subscriptions are renewed
	maxWait time.Duration

	in      inbox
	up      chan struct{} // one pending "connected" event, coalesced
	open    atomic.Bool
	lastErr atomic.Pointer[errBox]
	// attempted is closed once the first connection attempt ended, either
	// way: refused, or connected with its subscriptions renewed or refused.
	// A short-lived tool can fail fast on a broker it cannot use.
	attempted chan struct{}
	firstOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type errBox struct{ err error }

// sessionConfig is what differs between the clients built on a session.
type sessionConfig struct {
	filters []string
	will    *will
	handle  func(ctx context.Context, m paho.Message) error
	onUp    func(ctx context.Context) // after the subscriptions are renewed
	// clean asks for a clean session (MQTT 3.1.1 §3.1.2.4): the broker
	// keeps nothing for the client after it leaves. Only for read-only
	// watchers, which must not collect messages while nobody listens.
	clean bool
}

func newSession(c Connection, sc sessionConfig) (*session, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	filters, w := sc.filters, sc.will
	s := &session{
		log:       c.Logger,
		filters:   make(map[string]byte, len(filters)),
		handle:    sc.handle,
		onUp:      sc.onUp,
		maxWait:   c.MaxReconnectInterval,
		up:        make(chan struct{}, 1),
		attempted: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxWait <= 0 {
		s.maxWait = time.Minute
	}
	s.log = s.log.With("client_id", c.ClientID)
	s.in.init(maxInbox)
	for _, f := range filters {
		s.filters[f] = qos1
	}
	o := c.options().
		SetCleanSession(sc.clean).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(s.maxWait).
		// The first connection is retried by run with a backoff that
		// Close can interrupt; paho's own retry sleeps a fixed interval.
		SetConnectRetry(false).
		// Subscriptions are renewed in the connect hook instead: a broker
		// that lost its state (restart without persistence) has none.
		SetResumeSubs(false).
		SetAutoAckDisabled(true).
		// Order matters so paho calls the handler in arrival order from
		// its router goroutine (router.go matchAndDispatch; with false it
		// starts a goroutine per message and the order is lost, breaking
		// MQTT 3.1.1 §4.6 [MQTT-4.6.0-2], PUBACKs in arrival order). The
		// handler only appends to s.in and never blocks or publishes,
		// which is what the paho README asks of ordered handlers.
		SetOrderMatters(true).
		// Messages of a resumed session can arrive before any Subscribe
		// call registers a route (paho README, "Common Problems"), so all
		// messages go through the default handler.
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { s.in.push(m, s.log) }).
		SetOnConnectHandler(func(paho.Client) {
			s.open.Store(true)
			select {
			case s.up <- struct{}{}:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.open.Store(false)
			s.setErr(err)
			s.log.Warn("mqtt connection lost", "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			s.log.Debug("mqtt reconnecting")
		})
	if w != nil {
		o.SetBinaryWill(w.topic, w.payload, qos1, true)
	}
	s.client = paho.NewClient(o)
	return s, nil
}

// start connects in the background and starts the worker goroutines.
func (s *session) start() {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.connectLoop()
	go s.work()
}

// connectLoop connects with capped exponential backoff, then serves connect
// events; paho reconnects by itself after a lost connection. It connects
// anew only when renewing the subscriptions failed.
func (s *session) connectLoop() {
	defer s.wg.Done()
	for {
		if !s.connect() {
			return
		}
		for renewed := true; renewed; {
			select {
			case <-s.up:
				renewed = s.connected()
				s.firstAttemptDone()
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// connect returns true once connected, false when the session is stopped.
func (s *session) connect() bool {
	backoff := 250 * time.Millisecond
	for {
		tok := s.client.Connect()
		select {
		case <-tok.Done():
		case <-s.ctx.Done():
			return false
		}
		err := tok.Error()
		if err == nil {
			return true
		}
		s.setErr(err)
		s.firstAttemptDone()
		s.log.Warn("mqtt connect failed", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, s.maxWait)
	}
}

// connected renews the subscriptions and runs the owner's hook. It returns
// false after it dropped a connection whose subscriptions failed.
func (s *session) connected() bool {
	s.log.Info("mqtt connected")
	if len(s.filters) > 0 {
		if err := s.subscribe(); err != nil {
			// A client without its subscriptions would look healthy
			// and hear nothing; a new connection tries again.
			s.setErr(fmt.Errorf("subscribe: %w", err))
			s.log.Error("mqtt subscribe failed; reconnecting", "err", err)
			s.open.Store(false)
			s.client.Disconnect(0)
			return false
		}
	}
	if s.onUp != nil {
		s.onUp(s.ctx)
	}
	return true
}

// subscribe subscribes to every filter at QoS 1 and checks the SUBACK
// return codes: 0x80 is a refusal (MQTT 3.1.1 §3.9.3), which paho does not
// report as an error.
func (s *session) subscribe() error {
	tok := s.client.SubscribeMultiple(s.filters, nil)
	if err := wait(s.ctx, tok); err != nil {
		return err
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for f, code := range st.Result() {
		if code > 2 {
			return fmt.Errorf("broker refused subscription %q (code %#x)", f, code)
		}
	}
	return nil
}

// work handles queued messages in arrival order and acknowledges each after
// its handler returned nil. A handler error means "not stored": the message
// is retried with backoff, holding back the ones behind it, so that acks
// stay in order and nothing is acknowledged before it is on disk.
func (s *session) work() {
	defer s.wg.Done()
	for {
		m, ok := s.in.pop(s.ctx)
		if !ok {
			return
		}
		backoff := 100 * time.Millisecond
		for {
			err := s.handle(s.ctx, m)
			if err == nil {
				// After a lost connection paho drops the ack (router.go
				// sendAck); the broker redelivers the message and the
				// handler sees a duplicate.
				m.Ack()
				break
			}
			s.log.Warn("mqtt message not handled; retrying", "topic", m.Topic(), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, s.maxWait)
		}
	}
}

// publish sends one QoS 1 message and waits for its PUBACK. It refuses while
// the connection is down instead of letting paho queue the message in
// memory: the caller's durable store is the source of truth and re-sends
// after the next connect.
func (s *session) publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if !s.open.Load() || !s.client.IsConnectionOpen() {
		return ErrNotConnected
	}
	return wait(ctx, s.client.Publish(topic, qos1, retained, payload))
}

func (s *session) firstAttemptDone() { s.firstOnce.Do(func() { close(s.attempted) }) }

func (s *session) setErr(err error) { s.lastErr.Store(&errBox{err}) }

// err returns the last connection error, or nil.
func (s *session) err() error {
	if b := s.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

// stop disconnects and waits for the goroutines.
func (s *session) stop(ctx context.Context) error {
	s.cancel()
	// Unconditionally: paho's Disconnect also ends a connect attempt that
	// is still in flight (status.go Disconnecting), which IsConnected
	// does not report.
	s.client.Disconnect(250)
	s.open.Store(false)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt close: %w", ctx.Err())
	}
}

// wait waits for a paho token or the context.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
