package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/tekenid/teken/queue"
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
	return &outbox{store: store, term: term, log: log, kick: make(chan struct{}, 1), reset: make(chan struct{}, 1)}
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
			o.log.Warn("publishing results paused", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			o.notify()
			continue
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
			if err := term.PublishResult(ctx, r.JobID, r.Payload); err != nil {
				return after, err
			}
			after = r.Seq
		}
	}
}
