package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ErrStalled is returned by a publish when the broker did not answer within
// the Connection's AnswerTimeout: the connection looks open, nothing comes
// back. A broker process that hangs (SIGSTOP, a deadlock, a full disk under
// its persistence) keeps its sockets open, so TCP reports nothing wrong;
// with CleanSession=false and auto-reconnect paho never completes the
// tokens of such publishes by itself (client.go internalConnLost completes
// them only for a clean session), so without a deadline the caller would
// wait for ever.
var ErrStalled = errors.New("mqtt: broker stalled")

// DefaultAnswerTimeout is how long the broker has to answer a publish
// (PUBACK), a subscribe (SUBACK) or a keep-alive ping (PINGRESP) when
// Connection.AnswerTimeout is zero.
const DefaultAnswerTimeout = 10 * time.Second

// maxInFlight bounds the publishes handed to paho and not yet answered.
// paho keeps each of them in its store until its PUBACK (or the next
// connect), so a broker that stalls must not make that store grow with
// every receipt and result: at the bound the sender waits for room, the
// callers that wait give up at their deadline, and publishes nobody waits
// for are dropped once the sender's queue is full too.
const maxInFlight = 1000

// maxOutgoing bounds the publishes waiting for the sender goroutine.
const maxOutgoing = 256

// pingLost is the reason paho gives when no PINGRESP came within the ping
// timeout (ping.go keepalive: "pingresp not received, disconnecting"); paho
// has no typed error for it.
const pingLost = "pingresp not received, disconnecting"

// errAnswerTimeout is the cause of a publish's context when its own
// AnswerTimeout, not the caller's deadline, ended the wait.
var errAnswerTimeout = errors.New("answer timeout")

// inFlight is one publish handed to paho, waiting for its PUBACK.
type inFlight struct {
	tok  paho.Token
	sent time.Time
}

// stallWatch notices a broker that stopped answering. Every QoS 1 publish
// handed to paho is tracked here in send order; its PUBACKs come in the same
// order (MQTT 3.1.1 §4.6, [MQTT-4.6.0-2]), so one goroutine (run) waits on
// the oldest: when neither it nor anything else was answered for the
// answer timeout since it was sent, the session is stalled. The clock
// starts at the later of its sending and the broker's last answer, so a
// backlog the broker works off after a pause does not count each publish
// behind the first as late again. A PUBACK (a token completing without
// error), a SUBACK or a CONNACK clears the stall. A lost
// connection ends the judging of what it carried: paho resends those
// publishes after the next connect (client.go resume), and a broker that
// is merely down is "not connected", not stalled — unless the loss itself
// was a missed PINGRESP or a write that timed out, which is a stall.
type stallWatch struct {
	timeout time.Duration
	log     *slog.Logger
	// onChange is told every transition, under mu: it must not block or
	// call back into the session.
	onChange func(stalled bool, since time.Time)
	// up reports whether the connection is open now.
	up func() bool

	mu       sync.Mutex
	q        []inFlight // oldest first, publishes of the current connection
	answered time.Time  // the broker's last answer
	since    time.Time  // when the unanswered request was sent; zero while the broker answers
	wake     chan struct{}
	room     chan struct{} // poked whenever the queue shrinks
}

// waitingSince is when the clock of a request sent at sent started: at
// the later of its sending and the last answer.
func (w *stallWatch) waitingSince(sent time.Time) time.Time {
	if w.answered.After(sent) {
		return w.answered
	}
	return sent
}

func newStallWatch(timeout time.Duration, log *slog.Logger, up func() bool, onChange func(bool, time.Time)) *stallWatch {
	return &stallWatch{timeout: timeout, log: log, up: up, onChange: onChange, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (w *stallWatch) poke() { signal(w.wake) }

// waitRoom waits while maxInFlight publishes wait for their PUBACK, or
// returns false when ctx ends. The queue shrinks with every PUBACK and
// empties on every connect and loss, so only a stalled broker on an open
// connection keeps it full, and run judges that on its own clock.
func (w *stallWatch) waitRoom(ctx context.Context) bool {
	for {
		w.mu.Lock()
		n := len(w.q)
		w.mu.Unlock()
		if n < maxInFlight {
			return true
		}
		select {
		case <-w.room:
		case <-ctx.Done():
			return false
		}
	}
}

// add tracks a publish just handed to paho.
func (w *stallWatch) add(tok paho.Token) {
	w.mu.Lock()
	w.q = append(w.q, inFlight{tok: tok, sent: time.Now()})
	first := len(w.q) == 1
	w.mu.Unlock()
	if first {
		w.poke()
	}
}

// connected is a CONNACK: the broker answers, and a new connection begins.
func (w *stallWatch) connected() {
	w.mu.Lock()
	w.q = nil
	w.clearLocked()
	w.mu.Unlock()
	w.poke()
	signal(w.room)
}

// lost ends the connection's judging and marks a stall when the loss says
// the broker stopped answering.
func (w *stallWatch) lost(err error, pingTimeout, writeTimeout time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.q = nil
	defer signal(w.room)
	defer w.poke()
	switch {
	case err == nil:
	case err.Error() == pingLost:
		w.stallLocked(time.Now().Add(-pingTimeout), "no PINGRESP")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// paho's writer sets WriteTimeout on every packet (net.go
		// startOutgoingComms): the broker stopped reading.
		w.stallLocked(time.Now().Add(-writeTimeout), "write timed out")
	}
}

// connectFailed marks a stall when a connect attempt timed out waiting for
// the CONNACK: the broker took the TCP connection and said nothing
// (client.go attemptConnection sets ConnectTimeout on the handshake). A
// dial that timed out is not one: that broker is unreachable.
func (w *stallWatch) connectFailed(err error, connectTimeout time.Duration) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stallLocked(time.Now().Add(-connectTimeout), "no CONNACK")
}

// answer is a SUBACK or another answer outside the publish queue.
func (w *stallWatch) answer() {
	w.mu.Lock()
	w.clearLocked()
	w.mu.Unlock()
	w.poke() // the head's clock restarts
}

// stall marks the session stalled since sent.
func (w *stallWatch) stall(sent time.Time, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stallLocked(sent, why)
}

// overdue is told by a request started at start whose own AnswerTimeout
// passed: it marks the stall unless the broker answered something since
// (then the broker works, if slowly, and run judges the queue on its own
// clock). So a caller that got ErrStalled finds the session stalled, even
// when its timer fired a moment before run's.
func (w *stallWatch) overdue(start time.Time, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if from := w.waitingSince(start); time.Since(from) >= w.timeout {
		w.stallLocked(from, why)
	}
}

func (w *stallWatch) stallLocked(sent time.Time, why string) {
	if !w.since.IsZero() {
		return // the first unanswered request says since when
	}
	w.since = sent
	w.log.Warn("mqtt broker stalled", "why", why, "no_answer_for", time.Since(sent).Round(time.Millisecond))
	if w.onChange != nil {
		w.onChange(true, sent)
	}
}

// clearLocked records an answer of the broker and ends a stall.
func (w *stallWatch) clearLocked() {
	w.answered = time.Now()
	if w.since.IsZero() {
		return
	}
	since := w.since
	w.since = time.Time{}
	w.log.Info("mqtt broker answers again", "stalled_for", time.Since(since).Round(time.Millisecond))
	if w.onChange != nil {
		w.onChange(false, since)
	}
}

// stalled returns since when the broker has not answered, and whether it
// is stalled now.
func (w *stallWatch) stalled() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, !w.since.IsZero()
}

// run waits on the oldest tracked publish until ctx ends: its PUBACK
// clears a stall, its deadline marks one.
func (w *stallWatch) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// The head whose deadline already passed, and the start of its clock
	// then: an answer since restarts the clock, and it is judged again.
	var judged paho.Token
	var judgedFrom time.Time
	for {
		w.mu.Lock()
		if len(w.q) == 0 {
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		head := w.q[0]
		from := w.waitingSince(head.sent)
		w.mu.Unlock()
		var due <-chan time.Time
		if head.tok != judged || !from.Equal(judgedFrom) {
			timer.Reset(time.Until(from.Add(w.timeout)))
			due = timer.C
		}
		select {
		case <-head.tok.Done():
			w.mu.Lock()
			// connected or lost may have dropped the queue meanwhile.
			if len(w.q) > 0 && w.q[0].tok == head.tok {
				w.q[0] = inFlight{}
				w.q = w.q[1:]
				if head.tok.Error() == nil {
					w.clearLocked() // a PUBACK
				}
			}
			w.mu.Unlock()
			signal(w.room)
		case <-due:
			judged, judgedFrom = head.tok, from
			// A connection lost meanwhile is "not connected"; lost
			// drops the queue when paho tells it.
			if w.up() {
				w.stall(from, "no PUBACK")
			}
		case <-w.wake:
		case <-ctx.Done():
			return
		}
		timer.Stop()
	}
}

// outgoing is one publish for the sender goroutine.
type outgoing struct {
	topic    string
	payload  []byte
	retained bool
	what     string // for the log, of a publish nobody waits for
	// reply, when a caller waits, gets paho's token or why there is none;
	// buffered, so the sender never blocks on it.
	reply chan handedOver
	// gone is closed when the waiting caller gave up: the message is not
	// handed to paho any more.
	gone <-chan struct{}
}

type handedOver struct {
	tok paho.Token
	err error
}

// send hands the queued publishes to paho, one at a time, until the
// session stops. paho's Publish itself may block for up to WriteTimeout
// while its writer is stuck on a socket the broker does not read (client.go
// Publish waits on c.obound), so no caller makes that call itself: this
// goroutine does, and callers wait for it within their own deadline.
func (s *session) send() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case o := <-s.out:
			if !s.watch.waitRoom(s.ctx) {
				return
			}
			if o.gone != nil {
				select {
				case <-o.gone:
					continue
				default:
				}
			}
			tok, err := s.handOver(o)
			if o.reply != nil {
				o.reply <- handedOver{tok, err}
			} else if err != nil {
				s.log.Warn("mqtt publish dropped", "what", o.what, "err", err)
			}
		}
	}
}

func (s *session) handOver(o *outgoing) (paho.Token, error) {
	if !s.connectionUp() {
		return nil, ErrNotConnected
	}
	// client.go Publish: it may block for up to WriteTimeout on c.obound.
	tok := s.client.Publish(o.topic, qos1, o.retained, o.payload)
	s.watch.add(tok)
	return tok, nil
}

// publishLater queues a publish nobody waits for (a receipt, a ResultAck):
// it never blocks, and drops the message when the queue is full or the
// connection down. The sender hands it to paho and the stall watch waits
// for its PUBACK.
func (s *session) publishLater(what, topic string, payload []byte) {
	if s.ctx.Err() != nil || !s.connectionUp() {
		return
	}
	select {
	case s.out <- &outgoing{topic: topic, payload: payload, what: what}:
	default:
		s.log.Warn("mqtt publish queue full; dropped", "what", what)
	}
}

// answerErr says why a wait under ctx, begun at start, ended: the caller's
// own context, the connection lost meanwhile (paho keeps a persistent
// session's tokens open across a loss, client.go internalConnLost), or
// the answer timeout, which is a stall.
func (s *session) answerErr(ctx context.Context, what string, start time.Time) error {
	switch {
	case !errors.Is(context.Cause(ctx), errAnswerTimeout):
		return ctx.Err()
	case !s.connectionUp():
		return fmt.Errorf("%w: connection lost waiting for %s", ErrNotConnected, what)
	}
	s.watch.overdue(start, "no "+what)
	return fmt.Errorf("%w: no %s within %v", ErrStalled, what, s.answer)
}
