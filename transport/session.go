package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// will is a last-will message set at connect time.
type will struct {
	topic   string
	payload []byte
}

// session is one paho client with a persistent session (CleanSession=false,
// unless sessionConfig.clean asks otherwise), QoS 1 subscriptions renewed on every connect, and manual acknowledgements
// sent in arrival order, each after its message was handled (pipeline.go).
type session struct {
	client  paho.Client
	log     *slog.Logger
	filters map[string]byte
	handle  func(ctx context.Context, m paho.Message) (onAck func(), err error)
	// concurrent and workers: see sessionConfig and pipeline.go.
	concurrent func(m paho.Message) (key string, ok bool)
	workers    int
	onUp       func(ctx context.Context, sessionPresent bool) // after the subscriptions are renewed
	maxWait    time.Duration
	answer     time.Duration // the broker's time to answer, see Connection.AnswerTimeout

	in    inbox
	out   chan *outgoing // to the sender goroutine (send), bounded
	watch *stallWatch
	up    chan struct{} // one pending "connected" event, coalesced
	// linkMu orders paho's connect and connection-lost handlers, which
	// paho starts on goroutines of their own (client.go startCommsWorkers
	// and internalConnLost): a loss handled after the reconnect that
	// followed it must not mark the new connection down.
	linkMu  sync.Mutex
	open    atomic.Bool
	link    atomic.Pointer[link] // the current connection's life
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
	// handle handles one message; onAck, when not nil, runs once the
	// message is acknowledged, in arrival order (a terminal's receipt).
	handle func(ctx context.Context, m paho.Message) (onAck func(), err error)
	// concurrent says whether m may be handled beside the messages before
	// it, and its key: messages of one key are handled one after another.
	// Nil, or false for a message, means it is handled once every message
	// before it is (pipeline.go). Acknowledgements keep arrival order.
	concurrent func(m paho.Message) (key string, ok bool)
	// workers bounds the messages handled at once; zero means
	// defaultWorkers.
	workers int
	// onUp runs after the subscriptions are renewed, with the CONNACK's
	// session-present flag (MQTT 3.1.1 §3.2.2.2).
	onUp func(ctx context.Context, sessionPresent bool)
	// inboxBytes bounds the payload bytes waiting for the handler; zero
	// means defaultInboxBytes.
	inboxBytes int
	// clean asks for a clean session (MQTT 3.1.1 §3.1.2.4): the broker
	// keeps nothing for the client after it leaves. Only for read-only
	// watchers, which must not collect messages while nobody listens.
	clean bool
	// onStall is told when the broker stops answering (true, since when)
	// and answers again (false, since when it had not); see stallWatch.
	onStall func(stalled bool, since time.Time)
}

func newSession(c Connection, sc sessionConfig) (*session, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	filters, w := sc.filters, sc.will
	s := &session{
		log:        c.Logger,
		filters:    make(map[string]byte, len(filters)),
		handle:     sc.handle,
		concurrent: sc.concurrent,
		workers:    sc.workers,
		onUp:       sc.onUp,
		maxWait:    c.MaxReconnectInterval,
		answer:     c.answerTimeout(),
		out:        make(chan *outgoing, maxOutgoing),
		up:         make(chan struct{}, 1),
		attempted:  make(chan struct{}),
	}
	s.link.Store(downLink())
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxWait <= 0 {
		s.maxWait = time.Minute
	}
	s.log = s.log.With("client_id", c.ClientID)
	s.watch = newStallWatch(s.answer, s.log, s.connectionUp, func(stalled bool, since time.Time) {
		if stalled {
			s.setErr(fmt.Errorf("%w: no answer since %s", ErrStalled, since.UTC().Format(time.RFC3339)))
		}
		if sc.onStall != nil {
			sc.onStall(stalled, since)
		}
	})
	s.in.init(maxInbox, sc.inboxBytes)
	for _, f := range filters {
		s.filters[f] = qos1
	}
	o := c.options().
		SetCleanSession(sc.clean).
		// connectLoop reconnects itself: paho's automatic reconnect
		// throws away the CONNACK's session-present flag (client.go
		// reconnect), which a terminal's Sync reports, and sleeps in a
		// way Close cannot interrupt.
		SetAutoReconnect(false).
		SetMaxReconnectInterval(s.maxWait).
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
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { s.in.push(s.ctx, m, s.log) }).
		SetOnConnectHandler(func(paho.Client) {
			s.linkMu.Lock()
			s.watch.connected()  // a CONNACK is an answer
			s.link.Load().drop() // if the loss was not handled yet
			s.link.Store(&link{down: make(chan struct{})})
			s.open.Store(true)
			s.linkMu.Unlock()
			select {
			case s.up <- struct{}{}:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.setErr(err)
			s.log.Warn("mqtt connection lost", "err", err)
			s.linkMu.Lock()
			defer s.linkMu.Unlock()
			if s.client.IsConnectionOpen() {
				return // reconnected before this ran
			}
			s.open.Store(false)
			s.link.Load().drop()
			s.watch.lost(err, s.answer, writeTimeout)
		}).
		SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
			// Called on paho's connecting goroutine: it must not block.
			if f, ok := n.(paho.ConnectionNotificationFailed); ok {
				s.watch.connectFailed(f.Reason, connectTimeout)
			}
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
	s.wg.Add(4)
	go s.connectLoop()
	go s.work()
	go s.send()
	go func() { defer s.wg.Done(); s.watch.run(s.ctx) }()
}

// connectionUp reports whether the connection is open now.
func (s *session) connectionUp() bool { return s.open.Load() && s.client.IsConnectionOpen() }

// link is the life of one connection: down is closed when it ends.
type link struct {
	down chan struct{}
	once sync.Once
}

func downLink() *link {
	l := &link{down: make(chan struct{})}
	l.drop()
	return l
}

func (l *link) drop() { l.once.Do(func() { close(l.down) }) }

// markDown says the connection is gone, as the connection-lost handler does,
// for a disconnect of the session's own.
func (s *session) markDown() {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	s.open.Store(false)
	s.link.Load().drop()
}

// connectLoop connects with capped exponential backoff, serves the connect
// event, then waits until the connection is lost and connects again. A
// connection whose subscriptions could not be renewed is dropped, and the
// next one waits a pause that grows while they keep failing, so a broker
// that refuses them is not hammered.
func (s *session) connectLoop() {
	defer s.wg.Done()
	backoff := 250 * time.Millisecond
	for {
		present, ok := s.connect()
		if !ok {
			return
		}
		select {
		case <-s.up:
		case <-s.ctx.Done():
			return
		}
		renewed := s.connected(present)
		s.firstAttemptDone()
		if renewed {
			backoff = 250 * time.Millisecond
			select {
			case <-s.link.Load().down:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if !s.pause(backoff) {
			return
		}
		backoff = min(2*backoff, s.maxWait)
	}
}

// pause waits for d, or returns false when the session stops.
func (s *session) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// connect returns the CONNACK's session-present flag and true once
// connected, or false when the session is stopped.
func (s *session) connect() (sessionPresent, ok bool) {
	backoff := 250 * time.Millisecond
	fails := failureLog{msg: "mqtt connect failed"}
	for {
		tok := s.client.Connect()
		select {
		case <-tok.Done():
		case <-s.ctx.Done():
			return false, false
		}
		err := tok.Error()
		if err == nil {
			fails.succeeded(s.log, "mqtt connected after failed attempts")
			ct, _ := tok.(*paho.ConnectToken)
			return ct != nil && ct.SessionPresent(), true
		}
		s.setErr(err)
		s.firstAttemptDone()
		fails.failed(s.log, err, "retry_in", backoff)
		if !s.pause(backoff) {
			return false, false
		}
		backoff = min(2*backoff, s.maxWait)
	}
}

// connected renews the subscriptions and runs the owner's hook. It returns
// false after it dropped a connection whose subscriptions failed.
func (s *session) connected(sessionPresent bool) bool {
	s.log.Info("mqtt connected", "session_present", sessionPresent)
	if len(s.filters) > 0 {
		if err := s.subscribe(); err != nil {
			// A client without its subscriptions would look healthy
			// and hear nothing; a new connection tries again.
			s.setErr(fmt.Errorf("subscribe: %w", err))
			s.log.Error("mqtt subscribe failed; reconnecting", "err", err)
			s.markDown()
			s.disconnect()
			return false
		}
	}
	if s.onUp != nil {
		s.onUp(s.ctx, sessionPresent)
	}
	return true
}

// disconnect drops the connection so that connect can make a new one.
// paho's Disconnect does its work on a goroutine and may return before it
// even marked the client disconnecting (client.go Disconnect); a Connect
// called while the status still says connected answers "already connected"
// with a token that looks like success (client.go Connect,
// errAlreadyConnectedOrReconnecting with auto-reconnect), and the session
// would then wait for a connect event that never comes. So this waits
// until the connection is no longer open; a Connect during the rest of the
// disconnect fails (errStatusMustBeDisconnected) and is retried.
func (s *session) disconnect() {
	s.client.Disconnect(250)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.client.IsConnectionOpen() {
		select {
		case <-tick.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// subscribe subscribes to every filter at QoS 1 and checks the SUBACK
// return codes: 0x80 is a refusal (MQTT 3.1.1 §3.9.3), which paho does not
// report as an error. The SUBACK has AnswerTimeout to come: a broker that
// took the CONNECT and then stalled must not hold the connect goroutine,
// and with it every later connect, for ever.
func (s *session) subscribe() error {
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(s.ctx, s.answer, errAnswerTimeout)
	defer cancel()
	tok := s.client.SubscribeMultiple(s.filters, nil)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return s.answerErr(ctx, "SUBACK", start)
	}
	if err := tok.Error(); err != nil {
		return err
	}
	s.watch.answer()
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

// publish sends one QoS 1 message and waits for its PUBACK, for at most
// AnswerTimeout or until ctx ends, whichever comes first; past
// AnswerTimeout it returns an error wrapping ErrStalled, and when the
// connection is lost meanwhile one wrapping ErrNotConnected. It refuses while
// the connection is down instead of letting paho queue the message in
// memory: the caller's durable store is the source of truth and re-sends
// after the next connect. A publish that ran out of time stays in paho's
// store and goes out again after the next connect (client.go resume), so
// the broker may see it twice; every message of the contract is safe to
// receive twice.
func (s *session) publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if !s.connectionUp() {
		return ErrNotConnected
	}
	start, l := time.Now(), s.link.Load()
	ctx, cancel := context.WithTimeoutCause(ctx, s.answer, errAnswerTimeout)
	defer cancel()
	o := &outgoing{topic: topic, payload: payload, retained: retained, reply: make(chan handedOver, 1), gone: ctx.Done()}
	select {
	case s.out <- o:
	case <-ctx.Done():
		return s.answerErr(ctx, "room in the publish queue", start)
	case <-s.ctx.Done():
		return ErrClosed
	}
	var h handedOver
	select {
	case h = <-o.reply:
	case <-ctx.Done():
		return s.answerErr(ctx, "PUBACK", start)
	case <-s.ctx.Done():
		return ErrClosed
	}
	if h.err != nil {
		return h.err
	}
	select {
	case <-h.tok.Done():
		// After a reconnect paho completes the token of a publish it
		// resends without an error (messageids.go claimID), so nil is a
		// PUBACK or a resend; either way the broker has the message or
		// will get it again.
		return h.tok.Error()
	case <-l.down:
		// paho keeps a persistent session's token open across the loss
		// (client.go internalConnLost) and resends after the next
		// connect; the caller, whose store is the source of truth,
		// need not wait for that.
		return fmt.Errorf("%w: connection lost before the PUBACK", ErrNotConnected)
	case <-ctx.Done():
		return s.answerErr(ctx, "PUBACK", start)
	case <-s.ctx.Done():
		return ErrClosed
	}
}

// stalled returns since when the broker has not answered, and whether it is
// stalled now.
func (s *session) stalled() (time.Time, bool) { return s.watch.stalled() }

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
	s.markDown()
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
