package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// pipeMessage is a message whose PUBACK the test can see.
type pipeMessage struct {
	fuzzMessage
	id    int
	acked func(id int)
}

func (m pipeMessage) Ack() { m.acked(m.id) }

// TestPipelineAcksInArrivalOrderAfterHandling: handlers that finish in any
// order (later ones first, one failing twice before it succeeds) still get
// their PUBACKs in arrival order, each only after its handler returned nil;
// messages of one key never run at once; a barrier waits for all before it.
func TestPipelineAcksInArrivalOrderAfterHandling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		acks     []int
		handled  = map[int]bool{}
		running  = map[string]int{}
		fails    = map[int]int{}
		overlaps []string
	)
	const n = 200
	key := func(id int) string { return fmt.Sprint(id % 7) }
	barrier := func(id int) bool { return id%50 == 49 }
	s := &session{log: slog.New(slog.DiscardHandler), maxWait: time.Millisecond, ctx: ctx, workers: 8}
	s.in.init(maxInbox, 0)
	s.concurrent = func(m paho.Message) (string, bool) {
		id := m.(pipeMessage).id
		return key(id), !barrier(id)
	}
	s.handle = func(_ context.Context, m paho.Message) (func(), error) {
		id := m.(pipeMessage).id
		mu.Lock()
		k := key(id)
		if running[k] > 0 {
			overlaps = append(overlaps, k)
		}
		if barrier(id) {
			for other := range id {
				if !handled[other] {
					overlaps = append(overlaps, fmt.Sprintf("barrier %d before %d", id, other))
				}
			}
		}
		running[k]++
		mu.Unlock()
		// Later messages finish sooner.
		time.Sleep(time.Duration(n-id) * 20 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		running[k]--
		if id == 10 && fails[id] < 2 {
			fails[id]++
			return nil, errors.New("disk busy")
		}
		handled[id] = true
		return nil, nil
	}
	done := make(chan struct{})
	acked := func(id int) {
		mu.Lock()
		defer mu.Unlock()
		if !handled[id] {
			overlaps = append(overlaps, fmt.Sprintf("ack of %d before it was handled", id))
		}
		acks = append(acks, id)
		if len(acks) == n {
			close(done)
		}
	}
	s.wg.Add(1)
	go s.work()
	for id := range n {
		s.in.push(ctx, pipeMessage{fuzzMessage: fuzzMessage{topic: "t", payload: []byte("x")}, id: id, acked: acked}, s.log)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("not every message was acknowledged")
	}
	cancel()
	s.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Fatalf("ordering broken: %v", overlaps[:min(5, len(overlaps))])
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(acks, want) {
		t.Fatalf("acks out of arrival order: %v", acks[:20])
	}
	if s.in.taken.Load() != 0 {
		t.Fatalf("%d messages still taken", s.in.taken.Load())
	}
}
