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
// transport acknowledges each message to the broker only after its call
// returned nil, and in the order the broker delivered them. An error means
// "not done, try again": the transport retries the same message with capped
// backoff, and acknowledges none after it meanwhile. Anything final — a job
// stored, a job refused and its refusal recorded, a forged control message
// answered — returns nil.
//
// With TerminalConfig.JobWorkers above one, HandleJob may be called for
// several job envelopes at once (at most JobWorkers, together at most about
// a megabyte; a larger envelope is handled alone), so that their
// verification runs in parallel and their store transactions share a
// commit; never for two envelopes naming the same job
// id at once, those are handled in arrival order. HandleControl is called
// only once every message before it was handled, and none after it starts
// before it returns: a Cancel finds its job stored.
type TerminalHandler interface {
	// HandleJob verifies and stores one job envelope, or records its
	// refusal, and returns the receipt to publish.
	HandleJob(ctx context.Context, envelope []byte) (api.Receipt, error)
	// HandleControl acts on one Cancel, ResultAck or SyncRequest envelope
	// and says what to answer.
	HandleControl(ctx context.Context, envelope []byte) (ControlAnswer, error)
	// SyncState reports what the terminal holds; the transport sets the
	// Sync's trigger, request id and session-present flag.
	SyncState(ctx context.Context) (api.Sync, error)
	// Connected is called after every connect, once the subscriptions are
	// renewed and the online Status is published: the daemon re-sends
	// every result of its outbox that has no ResultAck yet. It runs on the
	// transport's connect goroutine; later connects wait until it returns.
	Connected(ctx context.Context)
	// Resend runs after the Sync that answered a SyncRequest went out: the
	// daemon re-sends every result without a ResultAck and returns the
	// receipts of every job it holds, which the transport publishes again
	// marked resent. It runs on the transport's sync goroutine.
	Resend(ctx context.Context) ([]api.Receipt, error)
}

// ControlAnswer is what the transport does after a control message.
type ControlAnswer struct {
	// Receipt, when set, is published on the receipts topic: the control
	// message was refused or changed nothing.
	Receipt *api.Receipt
	// SyncRequest is the request id of a verified SyncRequest: the
	// transport publishes a Sync naming it, then calls Resend, unless it
	// answered the same id within the last syncRequestMemory.
	SyncRequest string
}

// TerminalConfig configures OpenTerminal.
type TerminalConfig struct {
	Connection
	Root       string // topic root; api.DefaultRoot when empty
	TerminalID string
	Handler    TerminalHandler
	// Status returns the terminal's current health. The transport sets
	// Terminal, V, Edition and State itself; it calls Status once at open
	// for the last will (state offline) and after every connect (state
	// online).
	Status func() api.Status
	// SyncInterval is how often the Sync goes out again while connected,
	// counted from the last Sync, besides after every connect: a Sync the
	// central side missed (it was reconnecting itself when the broker
	// restarted) must not leave lost jobs lost until the terminal's next
	// reconnect. Zero means DefaultSyncInterval.
	SyncInterval time.Duration
	// BacklogQuiet is how long no message may arrive, with none waiting,
	// before the backlog a broker redelivers after a connect counts as
	// taken in and the connect Sync goes out, so that it lists the jobs
	// the broker kept and the central side re-sends only what the broker
	// lost. Zero means DefaultBacklogQuiet.
	BacklogQuiet time.Duration
	// BacklogMax bounds that wait: a backlog still arriving after it gets
	// the Sync anyway. Zero means DefaultBacklogMax.
	BacklogMax time.Duration
	// InboxBytes bounds the payload bytes received and not yet handled;
	// past it the transport stops reading, so the broker keeps the rest.
	// Zero means 20 MiB, which holds one of the largest job envelopes at
	// the default content limit (a larger one is taken alone).
	InboxBytes int
	// JobWorkers, when above one, lets HandleJob run for that many job
	// envelopes at once (see TerminalHandler); zero or one handles every
	// message alone, in arrival order.
	JobWorkers int
	// OnStall, when set, is told when the broker stops answering within
	// Connection.AnswerTimeout (stalled true, since when it was asked) and
	// when it answers again (false, and since when it had not). It runs on
	// a transport goroutine, under the transport's lock: it must not block
	// or call the Terminal.
	OnStall func(stalled bool, since time.Time)
}

// Defaults of TerminalConfig.
const (
	DefaultSyncInterval = 2 * time.Minute
	DefaultBacklogQuiet = time.Second
	DefaultBacklogMax   = 2 * time.Minute
)

// syncRequestMemory is how long a SyncRequest id is remembered: the same
// request again within it gets a Sync but no second round of re-sends, so
// a replayed request cannot make the terminal flood the broker.
const syncRequestMemory = time.Hour

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
	// connects tells the Sync loop of a new connection and whether the
	// broker kept the session; requests of a verified SyncRequest.
	connects chan bool
	requests chan string
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
	if cfg.BacklogQuiet <= 0 {
		cfg.BacklogQuiet = DefaultBacklogQuiet
	}
	if cfg.BacklogMax <= 0 {
		cfg.BacklogMax = DefaultBacklogMax
	}
	t := &Terminal{cfg: cfg, topics: make(map[api.Kind]string), connects: make(chan bool, 1), requests: make(chan string, 16)}
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
		filters:    []string{t.topics[api.KindJobs], t.topics[api.KindControl]},
		will:       &will{topic: t.topics[api.KindStatus], payload: offline},
		handle:     t.handle,
		concurrent: t.concurrent,
		workers:    cfg.JobWorkers,
		onUp:       t.connected,
		onStall:    cfg.OnStall,
		inboxBytes: cfg.InboxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	t.s.start()
	t.loop.Add(1)
	go t.syncLoop()
	return t, nil
}

// syncLoop publishes every Sync: after each connect once the redelivered
// backlog is in, in answer to a SyncRequest, and after SyncInterval without
// one while connected. It runs until Close.
func (t *Terminal) syncLoop() {
	defer t.loop.Done()
	interval := time.NewTimer(t.cfg.SyncInterval)
	defer interval.Stop()
	restart := func() {
		interval.Stop()
		select {
		case <-interval.C:
		default:
		}
		interval.Reset(t.cfg.SyncInterval)
	}
	// While a connect Sync waits for the backlog, settle polls the inbox.
	var settle <-chan time.Time
	var connectedAt time.Time
	var present bool
	answered := map[string]time.Time{} // request id → when answered
	for {
		select {
		case <-t.loopCtx.Done():
			return
		case present = <-t.connects:
			// The interval counts from the connect Sync; one due from
			// the last connection would only repeat it.
			interval.Stop()
			connectedAt = time.Now()
			if !present {
				// The broker kept nothing: there is no backlog.
				t.sync(api.SyncOnConnect, "", &present)
				restart()
				settle = nil
				continue
			}
			settle = time.After(min(t.cfg.BacklogQuiet, 100*time.Millisecond))
		case <-settle:
			if !t.s.in.quiet(t.cfg.BacklogQuiet) && time.Since(connectedAt) < t.cfg.BacklogMax {
				settle = time.After(min(t.cfg.BacklogQuiet, 100*time.Millisecond))
				continue
			}
			settle = nil
			t.sync(api.SyncOnConnect, "", &present)
			restart()
		case id := <-t.requests:
			t.sync(api.SyncOnRequest, id, nil)
			restart()
			now := time.Now()
			for k, at := range answered {
				if now.Sub(at) > syncRequestMemory {
					delete(answered, k)
				}
			}
			if _, seen := answered[id]; seen {
				t.s.log.Info("sync request answered before; nothing re-sent", "request_id", id)
				continue
			}
			answered[id] = now
			t.resend()
		case <-interval.C:
			interval.Reset(t.cfg.SyncInterval)
			if settle != nil || !t.Connected() {
				continue // the connect Sync is still to come
			}
			if _, stalled := t.s.stalled(); stalled {
				// It would only wait for its own timeout; the Sync
				// after the next connect, or this loop once the broker
				// answers again, tells it all.
				continue
			}
			t.sync(api.SyncOnInterval, "", nil)
		}
	}
}

// sync publishes one Sync and logs a failure: the next one tells the same.
func (t *Terminal) sync(trigger api.SyncTrigger, requestID string, present *bool) {
	if !t.Connected() {
		return
	}
	// publish waits at most AnswerTimeout; the context is for SyncState,
	// which reads the daemon's store.
	ctx, cancel := context.WithTimeout(t.loopCtx, t.s.answer)
	defer cancel()
	if err := t.publishSync(ctx, trigger, requestID, present); err != nil {
		t.s.log.Warn("publish sync", "trigger", trigger, "err", err)
	}
}

// resend answers a SyncRequest after its Sync: the daemon re-sends its
// results, and the receipts of every job it holds go out again.
func (t *Terminal) resend() {
	receipts, err := t.cfg.Handler.Resend(t.loopCtx)
	if err != nil {
		t.s.log.Warn("re-send after sync request", "err", err)
		return
	}
	sent := 0
	for _, r := range receipts {
		r.V, r.Terminal, r.Resent = api.Version, t.cfg.TerminalID, true
		b, err := api.Encode(&r)
		if err != nil {
			t.s.log.Error("receipt not re-sent", "job_id", r.JobID, "err", err)
			continue
		}
		// One at a time, each waiting for its PUBACK: thousands of
		// receipts must not overflow the sender's queue.
		if err := t.s.publish(t.loopCtx, t.topics[api.KindReceipts], b, false); err != nil {
			t.s.log.Warn("re-send receipts stopped", "sent", sent, "of", len(receipts), "err", err)
			return
		}
		sent++
	}
	t.s.log.Info("receipts re-sent after sync request", "count", sent)
}

// status fills in the fields the transport owns.
func (t *Terminal) status(state api.State) api.Status {
	st := t.cfg.Status()
	st.V = api.Version
	st.Edition = api.Edition
	st.Terminal = t.cfg.TerminalID
	st.State = state
	if st.Since.IsZero() {
		st.Since = time.Now().UTC()
	}
	return st
}

// concurrent lets job envelopes be handled side by side, keyed by the job id
// they claim (read unverified, only to order two of the same id); an
// envelope whose id cannot be read is keyed by nothing and still runs
// beside others, since the handler only refuses it. Control messages wait
// for everything before them.
func (t *Terminal) concurrent(m paho.Message) (string, bool) {
	if t.cfg.JobWorkers <= 1 || m.Topic() != t.topics[api.KindJobs] {
		return "", false
	}
	id, _ := api.UnverifiedJobID(m.Payload())
	return id, true
}

// handle routes one message to the handler; see TerminalHandler. Receipts
// go out once their message is acknowledged, so in arrival order too.
func (t *Terminal) handle(ctx context.Context, m paho.Message) (onAck func(), err error) {
	switch m.Topic() {
	case t.topics[api.KindJobs]:
		r, err := t.cfg.Handler.HandleJob(ctx, m.Payload())
		if err != nil {
			return nil, fmt.Errorf("handle job: %w", err)
		}
		return func() { t.publishReceipt(r) }, nil
	case t.topics[api.KindControl]:
		a, err := t.cfg.Handler.HandleControl(ctx, m.Payload())
		if err != nil {
			return nil, fmt.Errorf("handle control message: %w", err)
		}
		if a.SyncRequest != "" {
			select {
			case t.requests <- a.SyncRequest:
			default:
				// Sixteen requests wait already; the Syncs that answer
				// them tell this one's asker the same.
				t.s.log.Warn("sync request dropped: too many waiting", "request_id", a.SyncRequest)
			}
		}
		if a.Receipt == nil {
			return nil, nil
		}
		return func() { t.publishReceipt(*a.Receipt) }, nil
	}
	t.s.log.Warn("mqtt message on unexpected topic dropped", "topic", m.Topic())
	return nil, nil
}

// publishReceipt queues the receipt for the transport's sender without
// waiting, neither for its PUBACK nor for paho to take it (paho's Publish
// may block for its WriteTimeout on a broker that stopped reading), so one
// slow round trip does not hold back the next job. A receipt is advice: the
// job is already stored, and the Sync after the next connect tells the
// central system what the terminal holds; one dropped because the queue is
// full costs nothing else.
func (t *Terminal) publishReceipt(r api.Receipt) {
	r.V = api.Version
	r.Terminal = t.cfg.TerminalID
	b, err := api.Encode(&r)
	if err != nil {
		t.s.log.Error("receipt not published", "job_id", r.JobID, "err", err)
		return
	}
	t.s.publishLater("receipt "+r.JobID, t.topics[api.KindReceipts], b)
}

// connected runs after every connect: online status, the daemon, then the
// Sync loop is told, which publishes the connect Sync once the backlog is
// in. It runs on the connect goroutine under the session's context; each
// publish waits at most AnswerTimeout (session.publish), so a broker that
// stalls right after its CONNACK delays the next connect by that much, not
// for ever.
func (t *Terminal) connected(ctx context.Context, sessionPresent bool) {
	if err := t.PublishStatus(ctx, t.cfg.Status()); err != nil {
		t.s.log.Warn("publish online status", "err", err)
	}
	t.cfg.Handler.Connected(ctx)
	// The newest connection's flag is the one that counts.
	select {
	case <-t.connects:
	default:
	}
	t.connects <- sessionPresent
}

func (t *Terminal) publishSync(ctx context.Context, trigger api.SyncTrigger, requestID string, present *bool) error {
	sy, err := t.cfg.Handler.SyncState(ctx)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	sy.V = api.Version
	sy.Terminal = t.cfg.TerminalID
	sy.Trigger, sy.RequestID, sy.SessionPresent = trigger, requestID, present
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
	st.Edition = api.Edition
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
