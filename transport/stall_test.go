package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// within runs f and fails the test when it has not returned after limit: a
// publish to a frozen broker used to wait for ever. The limit is the
// harness's generous bound, not a measurement.
func within[T any](t *testing.T, limit time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(limit):
		t.Fatalf("%s still waits after %v", what, limit)
		panic("unreachable")
	}
}

// A broker that hangs (SIGSTOP) keeps the connection open and answers
// nothing. A publish fails with ErrStalled within AnswerTimeout instead of
// waiting for ever, the terminal says it is stalled while its connection
// still looks up, publishes nobody waits for never block their caller, and
// the first PUBACK after the broker wakes clears the stall, without a
// reconnect; what was published into the frozen broker arrives then.
func TestStalledBrokerIsDetectedAndClearedByPUBACK(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t)
	// KeepAlive stays 30 s: paho does not ping during this test, so only
	// the publishes can tell.
	r := newRig(t, m, Connection{AnswerTimeout: time.Second})
	if _, stalled := r.t.Stalled(); stalled {
		t.Fatal("stalled before the broker froze")
	}
	r.term.mu.Lock()
	connects := r.term.connects
	r.term.mu.Unlock()

	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Thaw() })
	asked := time.Now()
	id := newUUID(t)
	res := &api.Result{JobID: id, Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()}
	payload, err := encodeResult(r.t, res)
	if err != nil {
		t.Fatal(err)
	}
	// No deadline of the caller's: the transport's own must end the wait.
	err = within(t, 30*time.Second, "PublishResult to a frozen broker", func() error {
		return r.t.PublishResult(context.Background(), id, payload)
	})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("PublishResult to a frozen broker: %v, want ErrStalled", err)
	}
	since, stalled := r.t.Stalled()
	if !stalled || since.Before(asked.Add(-time.Second)) {
		t.Fatalf("Stalled() = %v, %v after an unanswered publish (asked at %v)", since, stalled, asked)
	}
	if !r.t.Connected() {
		t.Fatal("the connection no longer looks open: this test needs the case where it does")
	}
	if !errors.Is(r.t.Err(), ErrStalled) {
		t.Errorf("Err() = %v, want ErrStalled", r.t.Err())
	}
	if got := <-r.stalls; !got {
		t.Fatal("OnStall said false first")
	}

	// The central side's publishes have their deadline too.
	job := newJob(t, newUUID(t))
	err = within(t, 30*time.Second, "Dispatcher.Publish to a frozen broker", func() error {
		return r.d.Publish(context.Background(), job)
	})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Dispatcher.Publish to a frozen broker: %v, want ErrStalled", err)
	}
	// Receipts and ResultAcks are queued for the sender; the caller (the
	// handler worker) goes on at once even when the queue is full.
	within(t, 10*time.Second, "queueing receipts and acks", func() struct{} {
		for range 2 * maxOutgoing {
			r.t.publishReceipt(api.Receipt{V: api.Version, Terminal: testTerminal, JobID: id, Status: api.ReceiptStored, At: time.Now().UTC()})
			r.d.ackResult(testTerminal, id)
		}
		return struct{}{}
	})

	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		if _, stalled := r.t.Stalled(); stalled {
			return errors.New("terminal still stalled")
		}
		if _, stalled := r.d.Stalled(); stalled {
			return errors.New("dispatcher still stalled")
		}
		return nil
	})
	if got := <-r.stalls; got {
		t.Fatal("OnStall did not say the broker answers again")
	}
	r.term.mu.Lock()
	again := r.term.connects
	r.term.mu.Unlock()
	if again != connects {
		t.Fatalf("%d reconnects: the stall was to clear on a PUBACK, on the same connection", again-connects)
	}
	// What went into the frozen broker comes out of it.
	waitFor(t, 20*time.Second, func() error {
		if jobs, _ := r.term.storedCount(); jobs != 1 {
			return fmt.Errorf("%d jobs stored, want the one published during the freeze", jobs)
		}
		return nil
	})
	select {
	case got := <-r.results:
		if got.JobID != id {
			t.Fatalf("result %s, want %s", got.JobID, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the result published during the freeze never arrived")
	}
	if err := r.t.PublishResult(ctxT(t), id, payload); err != nil {
		t.Fatalf("publish after the thaw: %v", err)
	}
}

// A stalled broker that is asked nothing is found by the keep-alive: paho
// pings after KeepAlive without traffic and drops the connection when no
// PINGRESP comes within the ping timeout (ping.go), which the terminal
// reports as a stall; the reconnect after the thaw clears it.
func TestStalledBrokerFoundByKeepAlive(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t)
	h := newMemTerminal(nil)
	stalls := make(chan bool, 100)
	term, err := OpenTerminal(TerminalConfig{
		Connection: Connection{
			Brokers: []string{m.URL}, ClientID: "teken-keepalive", Logger: testLogger(t),
			MaxReconnectInterval: time.Second, KeepAlive: time.Second, AnswerTimeout: time.Second,
		},
		TerminalID: testTerminal, Handler: h,
		SyncInterval: time.Hour, // no publishes of its own while frozen
		OnStall: func(stalled bool, _ time.Time) {
			select {
			case stalls <- stalled:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCtx(t, term.Close) })
	waitFor(t, 10*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.connects == 0 {
			return errors.New("not connected yet")
		}
		return nil
	})

	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Thaw() })
	waitFor(t, 20*time.Second, func() error {
		if _, stalled := term.Stalled(); !stalled || term.Connected() {
			return fmt.Errorf("stalled %v, connected %v (last error %v)", stalled, term.Connected(), term.Err())
		}
		return nil
	})
	if got := <-stalls; !got {
		t.Fatal("OnStall said false first")
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if _, stalled := term.Stalled(); stalled || !term.Connected() {
			return fmt.Errorf("stalled %v, connected %v (last error %v)", stalled, term.Connected(), term.Err())
		}
		return nil
	})
}

// A broker that answers the CONNECT and then stalls must not hold the
// connect goroutine on the SUBACK: the subscribe gives up after
// AnswerTimeout, the session reports the stall and connects anew. The
// broker here is a fake that sends CONNACK and nothing else.
func TestSubscribeStallDoesNotHangTheConnectLoop(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				for {
					p, err := packets.ReadPacket(c)
					if err != nil {
						return
					}
					if _, ok := p.(*packets.ConnectPacket); ok {
						ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
						if err := ack.Write(c); err != nil {
							return
						}
					}
					// SUBSCRIBE, PUBLISH, PINGREQ: no answer.
				}
			}()
		}
	}()
	stalls := make(chan bool, 100)
	term, err := OpenTerminal(TerminalConfig{
		Connection: Connection{
			Brokers: []string{"tcp://" + ln.Addr().String()}, ClientID: "teken-subscribe-stall", Logger: testLogger(t),
			MaxReconnectInterval: time.Second, AnswerTimeout: 500 * time.Millisecond,
		},
		TerminalID: testTerminal, Handler: newMemTerminal(nil),
		OnStall: func(stalled bool, _ time.Time) {
			select {
			case stalls <- stalled:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		if n := accepted.Load(); n < 3 {
			return fmt.Errorf("%d connections so far: the connect loop hangs", n)
		}
		return nil
	})
	if got := <-stalls; !got {
		t.Fatal("the unanswered SUBSCRIBE was not reported as a stall")
	}
	// Close is not held up by the broker that does not answer.
	within(t, 20*time.Second, "Close", func() struct{} { closeCtx(t, term.Close); return struct{}{} })
}
