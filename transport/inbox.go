package transport

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxInbox bounds the messages waiting for the worker. QoS 1 messages are
// already bounded by the broker's in-flight window, since none is
// acknowledged before it is handled (Mosquitto: max_inflight_messages, 20 by
// default); the bound stops a flood of QoS 0 messages.
const maxInbox = 10000

// defaultInboxBytes bounds the payload bytes taken from the broker and not
// yet handled: one of the largest job envelopes (18994972 bytes,
// docs/PROTOCOL.md "Limits") with room beside it. A broker's in-flight
// window counts messages, not bytes: twenty 9 MiB job envelopes are 180 MiB
// held at once, and NATS's window is a thousand by default. Past the bound
// the reader waits (see inbox.push), so the broker keeps the rest. paho's
// reading pipeline holds about four messages more, one in each of its
// goroutines from the socket to the router, linked by unbuffered channels
// (net.go startIncoming, startIncomingComms and startComms, client.go
// startCommsWorkers, router.go matchAndDispatch), which no bound here
// reaches. With 40 pades jobs of 5 MiB queued (internal/soak
// TestLargeBacklog) tekend's peak RssAnon was 376–388 MiB with a bound of
// 64 MiB and 258–322 MiB with 16–20 MiB, and the backlog drained as fast;
// below that paho's pipeline and the store's copies are most of it.
const defaultInboxBytes = 20 << 20

// inbox is the FIFO between paho's router goroutine, which pushes, and the
// session's worker, which pops them in arrival order (see pipeline.go).
type inbox struct {
	mu       sync.Mutex
	items    []paho.Message
	wake     chan struct{} // a message was pushed
	room     chan struct{} // bytes were handled
	max      int
	maxBytes int
	bytes    int // payload bytes pushed and not yet done
	dropped  uint64
	// taken counts the messages popped and not yet done: being handled,
	// or handled and waiting for the ones before them to be acknowledged.
	taken atomic.Int64
	// last is when the last message arrived (UnixNano).
	last atomic.Int64
}

func (q *inbox) init(limit, maxBytes int) {
	q.wake = make(chan struct{}, 1)
	q.room = make(chan struct{}, 1)
	q.max = limit
	q.maxBytes = maxBytes
	if q.maxBytes <= 0 {
		q.maxBytes = defaultInboxBytes
	}
}

// push appends m. When the bytes waiting would pass the bound it waits for
// the worker to handle some first: this holds paho's reader, so TCP pushes
// back on the broker, which keeps the messages it has not sent. One message
// larger than the bound is taken alone. A push past the message bound, a
// flood of QoS 0 messages, is dropped instead; a dropped QoS 1 message is
// never acknowledged, so the broker delivers it again after the next
// connect.
func (q *inbox) push(ctx context.Context, m paho.Message, log *slog.Logger) {
	q.last.Store(time.Now().UnixNano())
	n := len(m.Payload())
	waited := false
	for {
		q.mu.Lock()
		if len(q.items) >= q.max {
			q.dropped++
			q.mu.Unlock()
			log.Warn("mqtt inbox full; message dropped", "topic", m.Topic(), "qos", m.Qos())
			return
		}
		if q.bytes == 0 || q.bytes+n <= q.maxBytes || ctx == nil {
			q.bytes += n
			q.items = append(q.items, m)
			q.mu.Unlock()
			break
		}
		q.mu.Unlock()
		if !waited {
			log.Debug("mqtt inbox holds its byte bound; reading paused", "bytes", n, "bound", q.maxBytes)
			waited = true
		}
		select {
		case <-q.room:
		case <-ctx.Done():
			return
		}
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest message, waiting for one, or false when ctx ends.
// The caller calls done when it has handled it.
func (q *inbox) pop(ctx context.Context) (paho.Message, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			m := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			if len(q.items) == 0 {
				q.items = nil // let the backing array go
			}
			q.taken.Add(1)
			q.mu.Unlock()
			return m, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// done releases the bytes of a message popped and handled.
func (q *inbox) done(m paho.Message) {
	q.mu.Lock()
	q.bytes -= len(m.Payload())
	q.mu.Unlock()
	q.taken.Add(-1)
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// quiet reports whether nothing waits or is being handled and no message
// arrived for d: the backlog a broker redelivers after a connect is taken
// in.
func (q *inbox) quiet(d time.Duration) bool {
	q.mu.Lock()
	empty := len(q.items) == 0
	q.mu.Unlock()
	return empty && q.taken.Load() == 0 && time.Since(time.Unix(0, q.last.Load())) >= d
}
