package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
)

// DefaultResendGrace is how recently a job may have been published and
// still not be re-sent on a Sync that does not list it: it may be on its way
// (queued at the broker, or being verified and stored by the terminal).
const DefaultResendGrace = time.Minute

// ErrTooLarge is matched (errors.Is) by the *TooLargeError that Publish
// returns for an envelope over DispatcherConfig.MaxMessageBytes.
var ErrTooLarge = errors.New("mqtt: message over the broker's size limit")

// TooLargeError says that a job envelope is larger than the broker takes.
// Mosquitto drops such a message without telling an MQTT 3.1.1 client and
// RabbitMQ only logs it, so the job would vanish: it is refused before
// publishing instead.
type TooLargeError struct {
	JobID string
	Size  int // bytes of the signed envelope
	Limit int // DispatcherConfig.MaxMessageBytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("job %s: envelope of %d bytes is over the broker's message size limit of %d bytes (set with max_message_bytes; see docs/BROKERS.md)", e.JobID, e.Size, e.Limit)
}

// Is matches ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// syncer answers Syncs off the message handler: re-sending jobs waits for
// the broker, and the handler must go on taking results meanwhile. Per
// terminal, one goroutine at a time works through the newest Sync; one that
// arrives while it works replaces any still waiting, and a Sync already
// answered (a redelivery: the same at as one of the last few answered) is
// dropped. Order is by arrival, not by at: a terminal whose clock steps
// back must still be answered.
type syncer struct {
	d  *Dispatcher
	mu sync.Mutex
	// per terminal
	waiting  map[string]syncTask
	running  map[string]bool
	answered map[string][]time.Time // the at of the last few Syncs answered, per terminal
	// published is when each job was last published, for the grace.
	published map[string]time.Time
	wg        sync.WaitGroup
}

// answeredMemory is how many answered Syncs per terminal are remembered
// to recognise a redelivery.
const answeredMemory = 8

type syncTask struct {
	s       *api.Sync
	arrived time.Time
}

func newSyncer(d *Dispatcher) *syncer {
	return &syncer{d: d, waiting: map[string]syncTask{}, running: map[string]bool{}, answered: map[string][]time.Time{}, published: map[string]time.Time{}}
}

// offer queues s for its terminal and returns at once.
func (y *syncer) offer(s *api.Sync) {
	y.mu.Lock()
	defer y.mu.Unlock()
	seen := y.answered[s.Terminal]
	for _, at := range seen {
		if at.Equal(s.At) {
			y.d.s.log.Debug("sync already answered; dropped", "terminal", s.Terminal, "at", s.At)
			return
		}
	}
	if len(seen) == answeredMemory {
		seen = seen[1:]
	}
	y.answered[s.Terminal] = append(seen, s.At)
	y.waiting[s.Terminal] = syncTask{s: s, arrived: time.Now()}
	if y.running[s.Terminal] {
		return
	}
	y.running[s.Terminal] = true
	y.wg.Add(1)
	go y.work(s.Terminal)
}

func (y *syncer) work(terminal string) {
	defer y.wg.Done()
	for {
		y.mu.Lock()
		task, ok := y.waiting[terminal]
		delete(y.waiting, terminal)
		if !ok || y.d.s.ctx.Err() != nil {
			y.running[terminal] = false
			y.mu.Unlock()
			return
		}
		y.mu.Unlock()
		if err := y.d.resend(y.d.s.ctx, task); err != nil {
			y.d.s.log.Warn("answer sync", "terminal", terminal, "err", err)
		}
	}
}

// busy reports whether a Sync is being answered or waits.
func (y *syncer) busy() bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, r := range y.running {
		if r {
			return true
		}
	}
	return false
}

// sent records a publish of a job, for the grace.
func (y *syncer) sent(terminal, jobID string) {
	now := time.Now()
	y.mu.Lock()
	defer y.mu.Unlock()
	y.published[resultKey(terminal, jobID)] = now
	if len(y.published) > 4096 {
		for k, at := range y.published {
			if now.Sub(at) > y.d.cfg.ResendGrace {
				delete(y.published, k)
			}
		}
	}
}

// recent reports whether the job was published within the grace before at.
func (y *syncer) recent(terminal, jobID string, at time.Time) bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	p, ok := y.published[resultKey(terminal, jobID)]
	return ok && at.Sub(p) < y.d.cfg.ResendGrace
}

// resend publishes again every pending job of the Sync's terminal that the
// terminal does not hold and that was not published within the grace.
func (d *Dispatcher) resend(ctx context.Context, task syncTask) error {
	s := task.s
	if s.Truncated {
		// The terminal holds more than it could list: any job may be
		// among the rest.
		d.s.log.Warn("sync lists cut at their limit; nothing re-sent", "terminal", s.Terminal)
		return nil
	}
	holds := make(map[string]bool, len(s.JobsWaiting)+len(s.ResultsUndelivered))
	for _, id := range s.JobsWaiting {
		holds[id] = true
	}
	for _, id := range s.ResultsUndelivered {
		holds[id] = true
	}
	pending, err := d.cfg.Jobs.Pending(ctx, s.Terminal)
	if err != nil {
		return fmt.Errorf("pending jobs: %w", err)
	}
	// A terminal whose broker kept no session lost every job queued for
	// it, however recent: none is on its way.
	lost := s.SessionPresent != nil && !*s.SessionPresent
	if lost {
		d.s.log.Info("the broker kept no session for the terminal: every job it lacks goes again", "terminal", s.Terminal)
	}
	topic := api.Topic(d.cfg.Root, s.Terminal, api.KindJobs)
	resent, young := 0, 0
	for _, p := range pending {
		if holds[p.JobID] {
			continue
		}
		if !lost && d.syncs.recent(s.Terminal, p.JobID, task.arrived) {
			young++
			continue
		}
		// Each waits at most AnswerTimeout; a stalled broker costs one
		// timeout, then the next Sync tries again.
		if err := d.s.publish(ctx, topic, p.Envelope, false); err != nil {
			return fmt.Errorf("publish job %s again (%d re-sent before): %w", p.JobID, resent, err)
		}
		d.syncs.sent(s.Terminal, p.JobID)
		resent++
	}
	if resent > 0 || young > 0 {
		d.s.log.Info("jobs published again after sync", "terminal", s.Terminal, "trigger", s.Trigger, "count", resent, "within_grace", young)
	}
	if d.cfg.OnResend != nil {
		d.cfg.OnResend(s.Terminal, resent)
	}
	return nil
}

// RequestSync asks a terminal for a Sync now, and to publish again every
// result it holds without a ResultAck and the receipts of the jobs it
// holds: what a central system does after it lost its broker session (a
// clean session, a new client id) or restored its database from a backup.
// It returns the request id, which the answering Sync carries. A terminal
// of edition 1 ignores the request; its next periodic Sync still comes.
func (d *Dispatcher) RequestSync(ctx context.Context, terminal string) (string, error) {
	if err := api.ValidTerminalID(terminal); err != nil {
		return "", fmt.Errorf("request sync: %w", err)
	}
	id := newRequestID()
	now := time.Now().UTC()
	r := &api.SyncRequest{V: api.Version, Terminal: terminal, RequestID: id, IssuedAt: now, ExpiresAt: now.Add(syncRequestTTL)}
	env, err := d.cfg.Signer.SignSyncRequest(r)
	if err != nil {
		return "", fmt.Errorf("request sync from %s: %w", terminal, err)
	}
	if err := d.s.publish(ctx, api.Topic(d.cfg.Root, terminal, api.KindControl), env, false); err != nil {
		return "", fmt.Errorf("request sync from %s: %w", terminal, err)
	}
	return id, nil
}

// syncRequestTTL is how long a SyncRequest stays valid: long enough for a
// terminal that is briefly offline, short enough that a captured request
// is soon worthless (a terminal also answers each id's re-sends once).
const syncRequestTTL = 15 * time.Minute

// newRequestID returns a random UUID (version 4) in the canonical lower
// case the contract wants.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
