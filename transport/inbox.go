package transport

import (
	"context"
	"log/slog"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxInbox bounds the messages waiting for the worker. QoS 1 messages are
// already bounded by the broker's in-flight window, since none is
// acknowledged before it is handled (Mosquitto: max_inflight_messages, 20 by
// default); the bound stops a flood of QoS 0 messages.
const maxInbox = 10000

// inbox is an unbounded-looking FIFO that never blocks the pusher: paho's
// router goroutine pushes, the session's worker pops.
type inbox struct {
	mu      sync.Mutex
	items   []paho.Message
	wake    chan struct{}
	max     int
	dropped uint64
}

func (q *inbox) init(limit int) {
	q.wake = make(chan struct{}, 1)
	q.max = limit
}

// push appends m, or drops it when the inbox is full. A dropped QoS 1
// message is never acknowledged, so the broker delivers it again after the
// next connect.
func (q *inbox) push(m paho.Message, log *slog.Logger) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.dropped++
		q.mu.Unlock()
		log.Warn("mqtt inbox full; message dropped", "topic", m.Topic(), "qos", m.Qos())
		return
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest message, waiting for one, or false when ctx ends.
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
