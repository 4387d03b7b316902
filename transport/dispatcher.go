package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tekenid/teken/api"
)

// EnvelopeSigner signs what the central system sends to terminals, as JWS
// compact serialisations. *Signer implements it; a central system with its
// key in an HSM brings its own.
type EnvelopeSigner interface {
	SignJob(j *api.Job) ([]byte, error)
	SignCancel(c *api.Cancel) ([]byte, error)
	SignResultAck(a *api.ResultAck) ([]byte, error)
	SignSyncRequest(r *api.SyncRequest) ([]byte, error)
	SignResultAcks(a *api.ResultAcks) ([]byte, error)
}

var _ EnvelopeSigner = (*api.Signer)(nil)

// DispatcherConfig configures OpenDispatcher. Only Connection and Signer are
// required.
type DispatcherConfig struct {
	Connection
	Root   string // topic root; api.DefaultRoot when empty
	Signer EnvelopeSigner
	Jobs   JobStore    // NewMemoryJobs() when nil
	Seen   ResultStore // NewMemoryResults(100000) when nil
	// AckTTL is how long a ResultAck stays valid; zero means a day.
	AckTTL time.Duration
	// MaxMessageBytes is the broker's message size limit: Publish refuses
	// a job whose envelope is larger (a *TooLargeError) instead of letting
	// the broker drop it. Zero means api.MaxResultBytes, the limit
	// docs/PROTOCOL.md asks every broker to be set to; negative, no check
	// (a broker known to take more). See docs/BROKERS.md.
	MaxMessageBytes int
	// ResendGrace: a job published less than this before a Sync arrived
	// is not re-sent for it, since it may still be on its way. Zero means
	// DefaultResendGrace.
	ResendGrace time.Duration

	// OnResult takes a result the first time it arrives; the dispatcher
	// acknowledges it to the terminal only after OnResult returned nil.
	// An error means "not stored": the message is retried. An error
	// wrapping ErrNotMine means the result is another central system's:
	// it is passed over, neither retried nor acknowledged, so the
	// terminal keeps it for the one that sent the job.
	OnResult func(ctx context.Context, r *api.Result) error
	// WatchResults makes a dispatcher that keeps no results: OnResult sees
	// each as it passes and none is acknowledged, so the terminal goes on
	// holding it for the central system's own session. A one-off
	// dispatch (tekenctl dispatch) is such a dispatcher: a ResultAck from
	// it would let the terminal delete a result nobody stored.
	WatchResults bool
	// OnReceipt, OnStatus and OnSync, when set, see every valid message
	// of their kind.
	OnReceipt func(ctx context.Context, r *api.Receipt)
	OnStatus  func(ctx context.Context, s *api.Status)
	OnSync    func(ctx context.Context, s *api.Sync)
	// OnResend, when set, is told how many jobs a Sync made the
	// dispatcher publish again. It runs on the Sync's own goroutine.
	OnResend func(terminal string, count int)
	// OnConnect, when set, is told of every connection, once subscribed,
	// and whether the broker kept the session: without it, what
	// terminals published meanwhile is gone from the broker, and a
	// central system asks the terminals that owe it something to send
	// it again (RequestSync). It runs on the session's goroutine and must
	// not block.
	OnConnect func(ctx context.Context, sessionPresent bool)
	// SharedGroup, when set, takes receipts, results and syncs through
	// the MQTT shared subscription $share/SharedGroup/…: of the
	// dispatchers of one central system with the same group (several
	// gateway instances), each message reaches one. Statuses reach every
	// one. Only for brokers that have shared subscriptions for MQTT
	// 3.1.1 clients (docs/BROKERS.md): on others the dispatcher gets
	// nothing.
	SharedGroup string
}

// ErrNotMine, from OnResult, says a result is for a job this central
// system did not send.
var ErrNotMine = errors.New("the result of a job another central system sent")

// Dispatcher is the central side of the wire contract: it signs and
// publishes jobs, collects receipts and results, acknowledges results, drops
// duplicate results and answers a terminal's Sync by publishing again the
// jobs it lacks.
type Dispatcher struct {
	cfg   DispatcherConfig
	s     *session
	ready chan struct{}
	syncs *syncer
	acks  *acker
}

// OpenDispatcher starts the client and returns without waiting for the
// broker; WaitConnected waits.
func OpenDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.Root == "" {
		cfg.Root = api.DefaultRoot
	}
	if err := api.ValidRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("open dispatcher: %w", err)
	}
	if cfg.Signer == nil {
		return nil, errors.New("open dispatcher: no signer")
	}
	if cfg.Jobs == nil {
		cfg.Jobs = NewMemoryJobs()
	}
	if cfg.Seen == nil {
		cfg.Seen = NewMemoryResults(100000)
	}
	if cfg.AckTTL <= 0 {
		cfg.AckTTL = 24 * time.Hour
	}
	if cfg.ResendGrace <= 0 {
		cfg.ResendGrace = DefaultResendGrace
	}
	if strings.ContainsAny(cfg.SharedGroup, "/+#") {
		return nil, fmt.Errorf("open dispatcher: shared group %q: a name without /, + or #", cfg.SharedGroup)
	}
	shared := func(filter string) string {
		if cfg.SharedGroup == "" {
			return filter
		}
		return "$share/" + cfg.SharedGroup + "/" + filter
	}
	d := &Dispatcher{cfg: cfg, ready: make(chan struct{})}
	d.syncs = newSyncer(d)
	d.acks = newAcker(d)
	var err error
	d.s, err = newSession(cfg.Connection, sessionConfig{
		filters: []string{
			shared(api.AllTerminals(cfg.Root, api.KindReceipts)),
			shared(api.AllTerminals(cfg.Root, api.KindResults)),
			api.AllTerminals(cfg.Root, api.KindStatus),
			shared(api.AllTerminals(cfg.Root, api.KindSync)),
		},
		handle: d.handleMessage,
		onUp:   d.connected,
	})
	if err != nil {
		return nil, fmt.Errorf("open dispatcher: %w", err)
	}
	d.s.start()
	d.acks.start()
	return d, nil
}

func (d *Dispatcher) connected(ctx context.Context, sessionPresent bool) {
	select {
	case <-d.ready:
	default:
		close(d.ready)
	}
	if d.cfg.OnConnect != nil {
		d.cfg.OnConnect(ctx, sessionPresent)
	}
}

// WaitConnected waits until the first connection is up and subscribed.
func (d *Dispatcher) WaitConnected(ctx context.Context) error {
	select {
	case <-d.ready:
		return nil
	case <-ctx.Done():
		if err := d.s.err(); err != nil {
			return fmt.Errorf("wait for broker: %w (last error: %v)", ctx.Err(), err)
		}
		return fmt.Errorf("wait for broker: %w", ctx.Err())
	}
}

// Connected reports whether the connection to the broker is up.
func (d *Dispatcher) Connected() bool { return d.s.connectionUp() }

// Stalled reports whether the broker stopped answering; see
// Terminal.Stalled.
func (d *Dispatcher) Stalled() (since time.Time, stalled bool) { return d.s.stalled() }

// Err returns the last connection error, or nil.
func (d *Dispatcher) Err() error { return d.s.err() }

// Publish signs a job, keeps it as pending and publishes it to its terminal
// at QoS 1, returning after the broker's PUBACK, or with an error wrapping
// ErrStalled when it did not come within AnswerTimeout. On error the job
// stays pending: the terminal's next Sync brings it out again, and calling
// Publish again is safe, since a terminal stores a job id once.
func (d *Dispatcher) Publish(ctx context.Context, j *api.Job) error {
	if j.V == 0 {
		j.V = api.Version
	}
	env, err := d.cfg.Signer.SignJob(j)
	if err != nil {
		return fmt.Errorf("publish job %s: %w", j.JobID, err)
	}
	return d.PublishEnvelope(ctx, PendingJob{Terminal: j.Terminal, JobID: j.JobID, ExpiresAt: j.ExpiresAt, Envelope: env})
}

// PublishEnvelope is Publish for a job signed before, whose envelope the
// caller keeps (the gateway signs a letter's job when it is submitted):
// every publication of one job is then the same bytes.
func (d *Dispatcher) PublishEnvelope(ctx context.Context, p PendingJob) error {
	if limit := d.maxMessageBytes(); limit > 0 && len(p.Envelope) > limit {
		return &TooLargeError{JobID: p.JobID, Size: len(p.Envelope), Limit: limit}
	}
	if err := d.cfg.Jobs.Put(ctx, p); err != nil {
		return fmt.Errorf("publish job %s: keep pending: %w", p.JobID, err)
	}
	if err := d.s.publish(ctx, api.Topic(d.cfg.Root, p.Terminal, api.KindJobs), p.Envelope, false); err != nil {
		return fmt.Errorf("publish job %s: %w", p.JobID, err)
	}
	d.syncs.sent(p.Terminal, p.JobID)
	return nil
}

// Cancel signs and publishes a Cancel for a job, returning after the
// broker's PUBACK, or with an error wrapping ErrStalled after
// AnswerTimeout. The terminal answers with a cancelled Result, unless the
// job was signed first, or with a Receipt for the cancel (too_late,
// unknown_job). A cancelled job is no longer re-sent on a Sync.
func (d *Dispatcher) Cancel(ctx context.Context, terminal, jobID, reason string) error {
	now := time.Now().UTC()
	c := &api.Cancel{V: api.Version, JobID: jobID, Terminal: terminal, IssuedAt: now, ExpiresAt: now.Add(d.cfg.AckTTL), Reason: reason}
	env, err := d.cfg.Signer.SignCancel(c)
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", jobID, err)
	}
	if err := d.s.publish(ctx, api.Topic(d.cfg.Root, terminal, api.KindControl), env, false); err != nil {
		return fmt.Errorf("cancel job %s: %w", jobID, err)
	}
	if err := d.cfg.Jobs.Remove(ctx, terminal, jobID); err != nil {
		return fmt.Errorf("cancel job %s: forget pending job: %w", jobID, err)
	}
	return nil
}

// handleMessage is handle as the session calls it: nothing waits for the
// acknowledgement.
func (d *Dispatcher) handleMessage(ctx context.Context, m paho.Message) (func(), error) {
	return nil, d.handle(ctx, m)
}

// handle takes one message from a terminal; see TerminalHandler for the
// retry and acknowledgement rules, which are the same here.
func (d *Dispatcher) handle(ctx context.Context, m paho.Message) error {
	terminal, kind, err := api.ParseTopic(d.cfg.Root, m.Topic())
	if err != nil {
		d.s.log.Warn("message on unexpected topic dropped", "topic", m.Topic(), "err", err)
		return nil
	}
	log := d.s.log.With("terminal", terminal, "kind", kind)
	switch kind {
	case api.KindResults:
		r, err := api.DecodeResult(m.Payload())
		if err == nil && r.Terminal != terminal {
			err = fmt.Errorf("result names terminal %q", r.Terminal)
		}
		if err != nil {
			log.Warn("invalid result dropped", "err", err)
			return nil
		}
		return d.result(ctx, r)
	case api.KindReceipts:
		r, err := api.DecodeReceipt(m.Payload())
		if err == nil && r.Terminal != terminal {
			err = fmt.Errorf("receipt names terminal %q", r.Terminal)
		}
		if err != nil {
			log.Warn("invalid receipt dropped", "err", err)
			return nil
		}
		isJob := r.For == "" || r.For == api.ForJob
		switch {
		case isJob && r.Status == api.ReceiptRefused && r.JobID != "":
			// Publishing it again cannot help: the terminal refuses
			// the same envelope for the same reason.
			if err := d.cfg.Jobs.Remove(ctx, terminal, r.JobID); err != nil {
				return fmt.Errorf("forget refused job %s: %w", r.JobID, err)
			}
			if r.Reason == api.ReasonConflict {
				log.Error("job id reused for another envelope: the terminal keeps the first", "job_id", r.JobID, "stored_envelope_sha256", r.StoredEnvelopeSHA256, "envelope_sha256", r.EnvelopeSHA256)
			} else {
				log.Warn("job refused", "job_id", r.JobID, "reason", r.Reason, "detail", r.Detail)
			}
		case !isJob && r.Status == api.ReceiptRefused:
			log.Warn("control message refused", "for", r.For, "job_id", r.JobID, "request_id", r.RequestID, "reason", r.Reason, "detail", r.Detail)
		}
		if d.cfg.OnReceipt != nil {
			d.cfg.OnReceipt(ctx, r)
		}
	case api.KindStatus:
		if len(m.Payload()) == 0 {
			return nil // a cleared retained status
		}
		s, err := api.DecodeStatus(m.Payload())
		if err == nil && s.Terminal != terminal {
			err = fmt.Errorf("status names terminal %q", s.Terminal)
		}
		if err != nil {
			log.Warn("invalid status dropped", "err", err)
			return nil
		}
		d.acks.edition(terminal, s.Edition)
		if d.cfg.OnStatus != nil {
			d.cfg.OnStatus(ctx, s)
		}
	case api.KindSync:
		s, err := api.DecodeSync(m.Payload())
		if err == nil && s.Terminal != terminal {
			err = fmt.Errorf("sync names terminal %q", s.Terminal)
		}
		if err != nil {
			log.Warn("invalid sync dropped", "err", err)
			return nil
		}
		return d.sync(ctx, s)
	}
	return nil
}

// result hands a new result to the caller, forgets its job and
// acknowledges it; a duplicate is only acknowledged again.
func (d *Dispatcher) result(ctx context.Context, r *api.Result) error {
	if d.cfg.WatchResults {
		if d.cfg.OnResult != nil {
			if err := d.cfg.OnResult(ctx, r); err != nil {
				return fmt.Errorf("result %s: %w", r.JobID, err)
			}
		}
		return nil
	}
	seen, err := d.cfg.Seen.Seen(ctx, r.Terminal, r.JobID)
	if err != nil {
		return fmt.Errorf("result %s: look up: %w", r.JobID, err)
	}
	if !seen {
		if d.cfg.OnResult != nil {
			if err := d.cfg.OnResult(ctx, r); errors.Is(err, ErrNotMine) {
				return nil // not acknowledged: the terminal keeps it for whoever sent the job
			} else if err != nil {
				return fmt.Errorf("result %s: %w", r.JobID, err)
			}
		}
		if err := d.cfg.Seen.Add(ctx, r.Terminal, r.JobID); err != nil {
			return fmt.Errorf("result %s: remember: %w", r.JobID, err)
		}
		if err := d.cfg.Jobs.Remove(ctx, r.Terminal, r.JobID); err != nil {
			return fmt.Errorf("result %s: forget job: %w", r.JobID, err)
		}
	}
	d.acks.add(r.Terminal, r.JobID)
	return nil
}

// ackResult signs one ResultAck and queues it for the sender without
// waiting for paho or the PUBACK, so a stalled broker does not hold the
// acker: a lost one costs a duplicate result, which is acknowledged again.
func (d *Dispatcher) ackResult(terminal, jobID string) {
	now := time.Now().UTC()
	a := &api.ResultAck{V: api.Version, JobID: jobID, Terminal: terminal, IssuedAt: now, ExpiresAt: now.Add(d.cfg.AckTTL)}
	env, err := d.cfg.Signer.SignResultAck(a)
	if err != nil {
		d.s.log.Error("sign result ack", "terminal", terminal, "job_id", jobID, "err", err)
		return
	}
	d.s.publishLater("result ack "+jobID, api.Topic(d.cfg.Root, terminal, api.KindControl), env)
}

// sync acknowledges again every result the terminal still holds that was
// already taken (its ResultAck was lost), and hands the re-sending of the
// jobs the terminal lacks to the syncer, so the handler never waits on the
// broker for it.
func (d *Dispatcher) sync(ctx context.Context, s *api.Sync) error {
	if d.cfg.OnSync != nil {
		d.cfg.OnSync(ctx, s)
	}
	for _, id := range s.ResultsUndelivered {
		seen, err := d.cfg.Seen.Seen(ctx, s.Terminal, id)
		if err != nil {
			return fmt.Errorf("sync %s: %w", s.Terminal, err)
		}
		if seen {
			d.acks.add(s.Terminal, id)
		}
	}
	d.syncs.offer(s)
	return nil
}

// Close disconnects and waits for the dispatcher's goroutines.
func (d *Dispatcher) Close(ctx context.Context) error {
	err := d.s.stop(ctx)
	d.syncs.wg.Wait() // they end with the session's context
	d.acks.wg.Wait()
	return err
}

// maxMessageBytes is the size over which Publish refuses an envelope; 0
// when it checks none.
func (d *Dispatcher) maxMessageBytes() int {
	switch limit := d.cfg.MaxMessageBytes; {
	case limit == 0:
		return api.MaxResultBytes
	case limit < 0:
		return 0
	default:
		return limit
	}
}
