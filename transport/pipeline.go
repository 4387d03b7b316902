package transport

import (
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The worker pipeline. Messages are handled in arrival order, one at a
// time, unless the client says which of them may be handled beside the
// ones before them (sessionConfig.concurrent): a terminal's job envelopes,
// whose verification is CPU work and whose store transactions then share
// one fsync (queue's group commit). Whatever runs concurrently, PUBACKs
// still go out in arrival order (MQTT 3.1.1 §4.6), and each only once its
// message was handled — for a job, once it is durable — so a crash at any
// point leaves the broker holding every message not yet safe.

const (
	// defaultWorkers bounds the messages handled at once. A broker sends
	// at most its in-flight window unacknowledged (Mosquitto 20 by
	// default, NATS a thousand), so more than a few dozen only wait.
	defaultWorkers = 32
	// concurrentBytes bounds the payload bytes handled at once: small
	// envelopes run side by side, a large one (a PDF of megabytes, which
	// its handler decodes and parses into several copies) runs with no
	// other beside it, as before the pipeline.
	concurrentBytes = 1 << 20
)

// handling is one message popped from the inbox, from its handler's start
// until its acknowledgement.
type handling struct {
	m     paho.Message
	done  chan struct{} // closed once handled; never when the session ends first
	onAck func()        // what handle asked to run at the acknowledgement
}

// work pops messages in arrival order and starts each one's handler; the
// acknowledger sends their PUBACKs in the same order.
func (s *session) work() {
	defer s.wg.Done()
	workers := s.workers
	if workers <= 0 {
		workers = defaultWorkers
	}
	// Bounded: a handled message waits here for the ones before it.
	order := make(chan *handling, 4*workers)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		s.acknowledge(order)
	}()
	p := pipeline{s: s, slots: workers, freed: make(chan int, workers), last: map[string]*handling{}}
	defer func() {
		p.drain()
		close(order)
		<-acked
	}()
	for {
		m, ok := s.in.pop(s.ctx)
		if !ok {
			return
		}
		h := &handling{m: m, done: make(chan struct{})}
		key, concurrent := "", false
		if s.concurrent != nil {
			key, concurrent = s.concurrent(m)
		}
		if concurrent && len(m.Payload()) <= concurrentBytes {
			if !p.start(h, key) {
				return
			}
		} else {
			// A message that depends on everything before it (a
			// Cancel after its job, a ResultAck after the result's
			// re-send), or one too large to run beside others:
			// handled once they are.
			if !p.idle() || !s.handleUntilDone(h) {
				return
			}
			close(h.done)
		}
		select {
		case order <- h:
		case <-s.ctx.Done():
			return
		}
	}
}

// pipeline tracks the handlers running beside the popping loop; only that
// loop calls its methods.
type pipeline struct {
	s       *session
	slots   int                  // handlers that may run at once
	running int                  // handlers started and not reaped
	bytes   int                  // their payload bytes
	freed   chan int             // a handler ended: its payload bytes
	last    map[string]*handling // per key, the newest message started
}

// start runs h's handler beside the others once there is a free slot and
// room in the byte budget, after the message of the same key before it,
// if that is still being handled. It reports false when the session ended
// while it waited.
func (p *pipeline) start(h *handling, key string) bool {
	n := len(h.m.Payload())
	for p.running == p.slots || p.bytes+n > concurrentBytes {
		if !p.reap() {
			return false
		}
	}
	p.reapFinished()
	before := p.last[key]
	p.last[key] = h
	p.running++
	p.bytes += n
	go func() {
		defer func() { p.freed <- n }() // never blocks: cap is slots
		if before != nil {
			select {
			case <-before.done:
			case <-p.s.ctx.Done():
				return
			}
		}
		if p.s.handleUntilDone(h) {
			close(h.done)
		}
	}()
	return true
}

// reap waits for one handler to end; false when the session ended first.
func (p *pipeline) reap() bool {
	select {
	case n := <-p.freed:
		p.running--
		p.bytes -= n
		return true
	case <-p.s.ctx.Done():
		return false
	}
}

// reapFinished takes the ends of the handlers that finished, without
// waiting, and forgets the keys whose newest message is handled, so the
// map holds only what can still order a later message.
func (p *pipeline) reapFinished() {
	for {
		select {
		case n := <-p.freed:
			p.running--
			p.bytes -= n
			continue
		default:
		}
		break
	}
	if len(p.last) < 4*p.slots {
		return
	}
	for k, h := range p.last {
		select {
		case <-h.done:
			delete(p.last, k)
		default:
		}
	}
}

// idle waits until no handler runs; false when the session ended first.
func (p *pipeline) idle() bool {
	for p.running > 0 {
		if !p.reap() {
			return false
		}
	}
	return true
}

// drain waits for every handler to return, once the session's context has
// ended: each returns soon after, its handler given that context.
func (p *pipeline) drain() {
	for ; p.running > 0; p.running-- {
		<-p.freed
	}
}

// acknowledge sends each message's PUBACK in arrival order once it is
// handled, and releases its bytes from the inbox.
func (s *session) acknowledge(order <-chan *handling) {
	for h := range order {
		select {
		case <-h.done:
		case <-s.ctx.Done():
			for range order { // let work's loop finish its sends
			}
			return
		}
		// After a lost connection paho drops the ack (router.go
		// sendAck); the broker redelivers the message and the handler
		// sees a duplicate.
		h.m.Ack()
		s.in.done(h.m)
		if h.onAck != nil {
			h.onAck()
		}
	}
}

// handleUntilDone handles h's message, retrying with backoff while the handler says
// "not handled yet" (an error), and reports false when the session ends
// first. The messages behind it may be handled meanwhile, never
// acknowledged before it.
func (s *session) handleUntilDone(h *handling) bool {
	m := h.m
	backoff := 100 * time.Millisecond
	fails := failureLog{msg: "mqtt message not handled; retrying"}
	for {
		onAck, err := s.handle(s.ctx, m)
		if err == nil {
			h.onAck = onAck
			fails.succeeded(s.log, "mqtt message handled after retries")
			return true
		}
		fails.failed(s.log, err, "topic", m.Topic(), "retry_in", backoff)
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
