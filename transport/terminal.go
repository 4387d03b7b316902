package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tekenid/teken/api"
)

// TerminalHandler is what the terminal daemon plugs into the transport. The
// transport calls it from one goroutine, in the order the broker delivered
// the messages, and acknowledges a message to the broker only after the
// call returned nil. An error means "not done, try again": the transport
// retries the same message with capped backoff, holding back the ones after
// it. Anything final — a job stored, a job refused and its refusal recorded,
// a forged control message logged — returns nil.
type TerminalHandler interface {
	// HandleJob verifies and stores one job envelope, or records its
	// refusal, and returns the receipt to publish.
	HandleJob(ctx context.Context, envelope []byte) (api.Receipt, error)
	// HandleControl acts on one Cancel or ResultAck envelope.
	HandleControl(ctx context.Context, envelope []byte) error
	// SyncState reports what the terminal holds; it is published after
	// every connect.
	SyncState(ctx context.Context) (api.Sync, error)
	// Connected is called after every connect, once the subscriptions are
	// renewed and the Sync is published: the daemon re-sends every result
	// of its outbox that has no ResultAck yet. It runs on the transport's
	// connect goroutine; later connects wait until it returns.
	Connected(ctx context.Context)
}

// TerminalConfig configures OpenTerminal.
type TerminalConfig struct {
	Connection
	Root       string // topic root; api.DefaultRoot when empty
	TerminalID string
	Handler    TerminalHandler
	// Status returns the terminal's current health. The transport sets
	// Terminal, V and State itself; it calls Status once at open for the
	// last will (state offline) and after every connect (state online).
	Status func() api.Status
	// SyncInterval is how often the Sync goes out again while connected,
	// besides after every connect: a Sync the central side missed (it was
	// reconnecting itself when the broker restarted) must not leave lost
	// jobs lost until the terminal's next reconnect. Zero means
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// OnStall, when set, is told when the broker stops answering within
	// Connection.AnswerTimeout (stalled true, since when it was asked) and
	// when it answers again (false, and since when it had not). It runs on
	// a transport goroutine, under the transport's lock: it must not block
	// or call the Terminal.
	OnStall func(stalled bool, since time.Time)
}

// DefaultSyncInterval is how often a connected terminal repeats its Sync.
const DefaultSyncInterval = 2 * time.Minute

// Terminal is the terminal's MQTT client: it receives jobs and control
// messages for one terminal and publishes receipts, results, status and
// sync messages.
type Terminal struct {
	cfg    TerminalConfig
	topics map[api.Kind]string
	s      *session
	// loopCtx ends the Sync loop, and a Sync it is publishing, at Close.
	loopCtx  context.Context
	stopLoop context.CancelFunc
	loop     sync.WaitGroup
}

// OpenTerminal starts the client and returns without waiting for the broker:
// it connects in the background, retrying with capped backoff, and stays
// connected until Close. The broker publishes a retained offline Status as
// the last will when the connection dies without Close.
func OpenTerminal(cfg TerminalConfig) (*Terminal, error) {
	if cfg.Root == "" {
		cfg.Root = api.DefaultRoot
	}
	if err := api.ValidRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	if err := api.ValidTerminalID(cfg.TerminalID); err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	if cfg.Handler == nil {
		return nil, errors.New("open terminal: no handler")
	}
	if cfg.Status == nil {
		cfg.Status = func() api.Status { return api.Status{Version: "unknown"} }
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	t := &Terminal{cfg: cfg, topics: make(map[api.Kind]string)}
	t.loopCtx, t.stopLoop = context.WithCancel(context.Background())
	for _, k := range []api.Kind{api.KindJobs, api.KindControl, api.KindReceipts, api.KindResults, api.KindStatus, api.KindSync} {
		t.topics[k] = api.Topic(cfg.Root, cfg.TerminalID, k)
	}
	st := t.status(api.StateOffline)
	offline, err := api.Encode(&st)
	if err != nil {
		return nil, fmt.Errorf("open terminal: encode last will: %w", err)
	}
	if cfg.Logger != nil {
		cfg.Connection.Logger = cfg.Logger.With("terminal", cfg.TerminalID)
	}
	t.s, err = newSession(cfg.Connection, sessionConfig{
		filters: []string{t.topics[api.KindJobs], t.topics[api.KindControl]},
		will:    &will{topic: t.topics[api.KindStatus], payload: offline},
		handle:  t.handle,
		onUp:    t.connected,
		onStall: cfg.OnStall,
	})
	if err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	t.s.start()
	t.loop.Add(1)
	go t.syncLoop()
	return t, nil
}

// syncLoop repeats the Sync while connected, until Close.
func (t *Terminal) syncLoop() {
	defer t.loop.Done()
	tick := time.NewTicker(t.cfg.SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.loopCtx.Done():
			return
		case <-tick.C:
			if !t.Connected() {
				continue
			}
			if _, stalled := t.s.stalled(); stalled {
				// It would only wait for its own timeout; the Sync
				// after the next connect, or this loop once the broker
				// answers again, tells it all.
				continue
			}
			// publish waits at most AnswerTimeout; the context is for
			// SyncState, which reads the daemon's store.
			ctx, cancel := context.WithTimeout(t.loopCtx, t.s.answer)
			if err := t.publishSync(ctx); err != nil {
				t.s.log.Warn("publish sync", "err", err)
			}
			cancel()
		}
	}
}

// status fills in the fields the transport owns.
func (t *Terminal) status(state api.State) api.Status {
	st := t.cfg.Status()
	st.V = api.Version
	st.Terminal = t.cfg.TerminalID
	st.State = state
	if st.Since.IsZero() {
		st.Since = time.Now().UTC()
	}
	return st
}

// handle routes one message to the handler; see TerminalHandler.
func (t *Terminal) handle(ctx context.Context, m paho.Message) error {
	switch m.Topic() {
	case t.topics[api.KindJobs]:
		r, err := t.cfg.Handler.HandleJob(ctx, m.Payload())
		if err != nil {
			return fmt.Errorf("handle job: %w", err)
		}
		r.V = api.Version
		r.Terminal = t.cfg.TerminalID
		t.publishReceipt(r)
		return nil
	case t.topics[api.KindControl]:
		if err := t.cfg.Handler.HandleControl(ctx, m.Payload()); err != nil {
			return fmt.Errorf("handle control message: %w", err)
		}
		return nil
	}
	t.s.log.Warn("mqtt message on unexpected topic dropped", "topic", m.Topic())
	return nil
}

// publishReceipt queues the receipt for the transport's sender without
// waiting, neither for its PUBACK nor for paho to take it (paho's Publish
// may block for its WriteTimeout on a broker that stopped reading), so one
// slow round trip does not hold back the next job. A receipt is advice: the
// job is already stored, and the Sync after the next connect tells the
// central system what the terminal holds; one dropped because the queue is
// full costs nothing else.
func (t *Terminal) publishReceipt(r api.Receipt) {
	b, err := api.Encode(&r)
	if err != nil {
		t.s.log.Error("receipt not published", "job_id", r.JobID, "err", err)
		return
	}
	t.s.publishLater("receipt "+r.JobID, t.topics[api.KindReceipts], b)
}

// connected runs after every connect: online status, sync, then the daemon.
// It runs on the connect goroutine under the session's context; each
// publish waits at most AnswerTimeout (session.publish), so a broker that
// stalls right after its CONNACK delays the next connect by that much, not
// for ever.
func (t *Terminal) connected(ctx context.Context) {
	if err := t.PublishStatus(ctx, t.cfg.Status()); err != nil {
		t.s.log.Warn("publish online status", "err", err)
	}
	if err := t.publishSync(ctx); err != nil {
		t.s.log.Warn("publish sync", "err", err)
	}
	t.cfg.Handler.Connected(ctx)
}

func (t *Terminal) publishSync(ctx context.Context) error {
	sy, err := t.cfg.Handler.SyncState(ctx)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	sy.V = api.Version
	sy.Terminal = t.cfg.TerminalID
	if sy.At.IsZero() {
		sy.At = time.Now().UTC()
	}
	return t.publishJSON(ctx, api.KindSync, &sy, false)
}

// PublishResult publishes one encoded Result at QoS 1, exactly the bytes
// given, and returns after the broker's PUBACK. The daemon passes the bytes
// it stored when the job ended, so a result is encoded once and every
// re-send is byte for byte the same; they must be a Result of this
// terminal (api.Encode made them). A PUBACK is not delivery: the result
// stays in the daemon's outbox until a ResultAck for its job arrives, and
// is published again after every connect. It returns ErrNotConnected while
// the connection is down, and an error wrapping ErrStalled when the broker
// did not answer within AnswerTimeout.
func (t *Terminal) PublishResult(ctx context.Context, jobID string, payload []byte) error {
	if err := t.s.publish(ctx, t.topics[api.KindResults], payload, false); err != nil {
		return fmt.Errorf("publish result %s: %w", jobID, err)
	}
	return nil
}

// PublishStatus publishes the terminal's health, retained, with state
// online, and returns after the broker's PUBACK (at most AnswerTimeout, as
// PublishResult).
func (t *Terminal) PublishStatus(ctx context.Context, st api.Status) error {
	st.V = api.Version
	st.Terminal = t.cfg.TerminalID
	st.State = api.StateOnline
	if st.Since.IsZero() {
		st.Since = time.Now().UTC()
	}
	return t.publishJSON(ctx, api.KindStatus, &st, true)
}

func (t *Terminal) publishJSON(ctx context.Context, kind api.Kind, m api.Message, retained bool) error {
	b, err := api.Encode(m)
	if err != nil {
		return err
	}
	if err := t.s.publish(ctx, t.topics[kind], b, retained); err != nil {
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	return nil
}

// Connected reports whether the connection to the broker is up. A stalled
// broker's connection is up: see Stalled.
func (t *Terminal) Connected() bool { return t.s.connectionUp() }

// Stalled reports whether the broker stopped answering: a publish, a
// subscribe or a keep-alive ping went unanswered for AnswerTimeout, or the
// last connection was lost or refused for that reason. since is when the
// unanswered request was sent. It clears when the broker answers again (a
// PUBACK, a SUBACK) or a new connection is up (a CONNACK); while the
// connection is down it stays as the last connection left it.
func (t *Terminal) Stalled() (since time.Time, stalled bool) { return t.s.stalled() }

// Err returns the last connection error, such as a refused TLS handshake,
// or nil when there was none.
func (t *Terminal) Err() error { return t.s.err() }

// Close publishes a retained offline Status (a clean disconnect does not
// trigger the last will, MQTT 3.1.1 §3.14.4), disconnects and waits for the
// transport's goroutines. Unacknowledged messages stay with the broker for
// the next session. A stalled broker gets no offline Status: it would not
// answer it either, and waiting for that would spend the caller's shutdown.
func (t *Terminal) Close(ctx context.Context) error {
	t.stopLoop()
	t.loop.Wait()
	_, stalled := t.s.stalled()
	switch {
	case stalled:
		// It would only use up AnswerTimeout of the caller's shutdown.
		t.s.log.Warn("broker stalled; offline status not published")
	case t.Connected():
		st := t.status(api.StateOffline)
		st.Since = time.Now().UTC()
		// publish waits at most AnswerTimeout, within ctx.
		if err := t.publishJSON(ctx, api.KindStatus, &st, true); err != nil {
			t.s.log.Warn("publish offline status", "err", err)
		}
	}
	return t.s.stop(ctx)
}
