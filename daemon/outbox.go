package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// resendAfter is how long a published result may wait for its ResultAck
// before it is published again even without a reconnect: an acknowledgement
// lost on a live connection must not strand a result.
const resendAfter = 5 * time.Minute

// outbox publishes the store's undelivered results in sequence order. The
// store is the source of truth: a result is done only when its ResultAck
// arrives (see intake.resultAcked), never on PUBACK.
type outbox struct {
	store outboxStore
	term  func() resultPublisher
	log   *slog.Logger
	kick  chan struct{}
	reset chan struct{}
	awake chan struct{} // the broker answers again after a stall
}

// resultPublisher is the part of the MQTT transport the outbox uses.
type resultPublisher interface {
	PublishResult(ctx context.Context, jobID string, payload []byte) error
	Connected() bool
}

// outboxStore is the part of the store the outbox reads.
type outboxStore interface {
	Undelivered(ctx context.Context, after uint64, limit int) ([]queue.Result, error)
}

var _ outboxStore = (*queue.Store)(nil)

func newOutbox(store outboxStore, term func() resultPublisher, log *slog.Logger) *outbox {
	return &outbox{store: store, term: term, log: log, kick: make(chan struct{}, 1), reset: make(chan struct{}, 1), awake: make(chan struct{}, 1)}
}

// answered says the broker answers again after a stall: a drain paused by
// the stall goes on now instead of at the end of its backoff. It never
// blocks.
func (o *outbox) answered() {
	select {
	case o.awake <- struct{}{}:
	default:
	}
}

// notify says a new result is in the store.
func (o *outbox) notify() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// resendAll says every undelivered result must go out again, as after a
// reconnect, when the broker may have lost what it had not yet delivered.
func (o *outbox) resendAll() {
	select {
	case o.reset <- struct{}{}:
	default:
	}
}

// run publishes until ctx ends. sent is the highest sequence published since
// the last reset; only newer results go out until the next reset.
func (o *outbox) run(ctx context.Context) error {
	var sent uint64
	lastReset := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	backoff := time.Second
	var pausedBy string // the error publishing stopped on, logged once
	var pauses int
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.reset:
			sent, lastReset = 0, time.Now()
		case <-o.kick:
		case <-tick.C:
			if time.Since(lastReset) > resendAfter {
				sent, lastReset = 0, time.Now()
			}
		}
		next, err := o.drain(ctx, sent)
		sent = next
		if err != nil && ctx.Err() == nil {
			// A stalled broker (no PUBACK within its deadline) pauses
			// the drain like any other failure: the result that timed
			// out is still after sent and goes out again when the pause
			// ends, or as soon as the broker answers again. It may then
			// reach the central side twice (paho resends its copy
			// too); the central side takes a result once.
			stalled := errors.Is(err, transport.ErrStalled) || errors.Is(err, context.DeadlineExceeded)
			// Logged on change, not per pause: a broker down for an
			// hour is one line, and one more when results flow again.
			if text := err.Error(); text != pausedBy {
				o.log.Warn("publishing results paused", "err", err, "broker_stalled", stalled, "retry_in", backoff)
				pausedBy = text
			}
			pauses++
			pause := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				pause.Stop()
				return nil
			case <-pause.C:
			case <-o.awake:
				pause.Stop()
			}
			backoff = min(backoff*2, time.Minute)
			o.notify()
			continue
		}
		if pauses > 0 {
			o.log.Info("publishing results again", "pauses", pauses, "last_err", pausedBy)
			pausedBy, pauses = "", 0
		}
		backoff = time.Second
	}
}

func (o *outbox) drain(ctx context.Context, after uint64) (uint64, error) {
	term := o.term()
	if term == nil || !term.Connected() {
		return after, nil
	}
	for {
		batch, err := o.store.Undelivered(ctx, after, 100)
		if err != nil {
			return after, err
		}
		if len(batch) == 0 {
			return after, nil
		}
		for _, r := range batch {
			if len(r.Payload) == 0 {
				// Cannot happen for results this daemon wrote; skip
				// rather than block every later result behind it.
				o.log.Error("empty result in outbox", "seq", r.Seq, "job", r.JobID)
				after = r.Seq
				continue
			}
			// The bytes stored when the job ended, as they are: a
			// result is encoded once, and every re-send is the same.
			// Each has its deadline: a broker that stalls ends the
			// drain here, and the results wait in the store. The
			// transport's AnswerTimeout (the same brokerAnswerTimeout)
			// normally ends the wait first, with ErrStalled; this
			// bound is the outbox's own, whatever the publisher.
			pctx, cancel := context.WithTimeout(ctx, brokerAnswerTimeout+time.Second)
			err := term.PublishResult(pctx, r.JobID, r.Payload)
			cancel()
			if err != nil {
				return after, err
			}
			after = r.Seq
		}
	}
}
