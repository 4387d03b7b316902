package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// Default resend schedule of a result without its ResultAck, while
// connected: an acknowledgement lost on a live connection, or a central
// side that missed the result (its own session lost), must not strand the
// result until the next reconnect. broker.result_resend_initial and
// broker.result_resend_max set them.
const (
	defaultResendInitial = 30 * time.Second
	defaultResendMax     = 10 * time.Minute
)

// outbox publishes the store's undelivered results in sequence order, and
// each again on its own capped backoff until its ResultAck arrives. The
// store is the source of truth: a result is done only when its ResultAck
// arrives (see intake.resultAcked), never on PUBACK.
type outbox struct {
	store outboxStore
	term  func() resultPublisher
	log   *slog.Logger
	kick  chan struct{}
	reset chan struct{}
	awake chan struct{} // the broker answers again after a stall
	// initial and most bound the resend backoff (zero: the defaults).
	initial, most time.Duration
	now           func() time.Time
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
	return &outbox{store: store, term: term, log: log, kick: make(chan struct{}, 1), reset: make(chan struct{}, 1), awake: make(chan struct{}, 1), now: time.Now}
}

// answered says the broker answers again after a stall: a drain paused by
// the stall goes on now instead of at the end of its backoff. It never
// blocks.
func (o *outbox) answered() { signal(o.awake) }

// notify says a new result is in the store.
func (o *outbox) notify() { signal(o.kick) }

// resendAll says every undelivered result must go out again now, as after
// a reconnect, when the broker may have lost what it had not yet
// delivered, or on a SyncRequest.
func (o *outbox) resendAll() { signal(o.reset) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// resendState is one result's place in the resend schedule.
type resendState struct {
	next     time.Time     // when it goes out again
	interval time.Duration // the wait after that
}

// schedule is the resend state of every result published since the last
// reset, by sequence; sent is the highest sequence published, so a drain
// reads only newer results from the store until something is due.
type schedule struct {
	sent  uint64
	state map[uint64]resendState
}

func (s *schedule) clear() { s.sent, s.state = 0, map[uint64]resendState{} }

// due returns the earliest resend time, or the zero time when none waits.
func (s *schedule) due() time.Time {
	var first time.Time
	for _, st := range s.state {
		if first.IsZero() || st.next.Before(first) {
			first = st.next
		}
	}
	return first
}

// run publishes until ctx ends.
func (o *outbox) run(ctx context.Context) error {
	initial, most := o.initial, o.most
	if initial <= 0 {
		initial = defaultResendInitial
	}
	if most < initial {
		most = max(initial, defaultResendMax)
	}
	var sch schedule
	sch.clear()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := time.Second
	var pausedBy string // the error publishing stopped on, logged once
	var pauses int
	for {
		// Wake for the earliest resend, at the latest in a minute.
		wait := time.Minute
		if first := sch.due(); !first.IsZero() {
			wait = max(min(first.Sub(o.now()), wait), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-o.reset:
			sch.clear()
		case <-o.kick:
		case <-timer.C:
		}
		timer.Stop()
		err := o.drain(ctx, &sch, initial, most)
		if err != nil && ctx.Err() == nil {
			// A stalled broker (no PUBACK within its deadline) pauses
			// the drain like any other failure: the result that timed
			// out is published again when the pause ends, or as soon
			// as the broker answers again. It may then reach the
			// central side twice (paho resends its copy too); the
			// central side takes a result once.
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

// publishWindow is how many results are published at once, each waiting
// for its own PUBACK: one at a time, a drain after an outage would go at
// one round trip per result. BenchmarkResultDrain (transport): 64 at
// once drain 0.58–0.67 of the broker's raw publish rate, 32 0.47–0.59.
const publishWindow = 64

// publish publishes rs side by side and returns each one's error. The
// bytes go out as they were stored when the job ended: a result is
// encoded once, and every re-send is the same. Each has its deadline: a
// broker that stalls ends the drain here, and the results wait in the
// store. The transport's AnswerTimeout (the same brokerAnswerTimeout)
// normally ends the wait first, with ErrStalled; this bound is the
// outbox's own, whatever the publisher.
func (o *outbox) publish(ctx context.Context, term resultPublisher, rs []queue.Result) []error {
	errs := make([]error, len(rs))
	if len(rs) == 1 { // the common case of one letter: no goroutine
		errs[0] = o.publishOne(ctx, term, rs[0])
		return errs
	}
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = o.publishOne(ctx, term, r) })
	}
	wg.Wait()
	return errs
}

func (o *outbox) publishOne(ctx context.Context, term resultPublisher, r queue.Result) error {
	pctx, cancel := context.WithTimeout(ctx, brokerAnswerTimeout+time.Second)
	defer cancel()
	return term.PublishResult(pctx, r.JobID, r.Payload)
}

// drain publishes the results newer than sch.sent and, when one is due,
// every result whose resend time has come, reading the whole outbox then:
// results acknowledged meanwhile drop out of the schedule.
func (o *outbox) drain(ctx context.Context, sch *schedule, initial, most time.Duration) error {
	term := o.term()
	if term == nil || !term.Connected() {
		return nil
	}
	first := sch.due()
	resendDue := !first.IsZero() && !o.now().Before(first)
	after := sch.sent
	if resendDue {
		after = 0
	}
	seen := map[uint64]bool{}
	for {
		batch, err := o.store.Undelivered(ctx, after, 100)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		var send []queue.Result
		for _, r := range batch {
			after = r.Seq
			seen[r.Seq] = true
			if st, known := sch.state[r.Seq]; known && o.now().Before(st.next) {
				continue
			}
			if len(r.Payload) == 0 {
				// Cannot happen for results this daemon wrote; skip
				// rather than block every later result behind it.
				o.log.Error("empty result in outbox", "seq", r.Seq, "job", r.JobID)
				sch.state[r.Seq] = resendState{next: o.now().Add(most), interval: most}
				continue
			}
			send = append(send, r)
		}
		for len(send) > 0 {
			n := min(len(send), publishWindow)
			errs := o.publish(ctx, term, send[:n])
			for i, r := range send[:n] {
				if errs[i] != nil {
					continue
				}
				st, known := sch.state[r.Seq]
				next := initial
				if known {
					next = min(st.interval*2, most)
					o.log.Info("result published again: no acknowledgement yet", "job", r.JobID, "next_in", next)
				}
				sch.state[r.Seq] = resendState{next: o.now().Add(next), interval: next}
				sch.sent = max(sch.sent, r.Seq)
			}
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			send = send[n:]
		}
	}
	if resendDue {
		for seq := range sch.state {
			if !seen[seq] {
				delete(sch.state, seq) // acknowledged
			}
		}
	}
	return nil
}
