package transport

import (
	"sync"
	"time"

	"github.com/tekenid/teken/api"
)

const (
	// ackWindow is how long the acker gathers acknowledgements after the
	// first one before it signs them: results drained from a backlog
	// arrive many per millisecond, so a batch of hundreds costs one
	// signature here and one verification and one store transaction on
	// the terminal, while a single letter's ack waits no longer than a
	// human notices.
	ackWindow = 20 * time.Millisecond
	// maxPendingAcks bounds the acknowledgements waiting to be signed; one
	// dropped past it costs a duplicate result, acknowledged again.
	maxPendingAcks = 100000
)

// acker signs and queues the dispatcher's result acknowledgements on a
// goroutine of its own, so the handler never waits for a signature: one
// ResultAcks per batch to a terminal of edition 4 or later, one ResultAck
// per result to an older one (or one whose Status has not been seen, as
// on RabbitMQ, which gives a wildcard subscription no retained status).
type acker struct {
	d    *Dispatcher
	wake chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	pending  map[string][]string // terminal → job ids to acknowledge
	count    int
	editions map[string]int // terminal → edition from its last Status
}

func newAcker(d *Dispatcher) *acker {
	return &acker{d: d, wake: make(chan struct{}, 1), pending: map[string][]string{}, editions: map[string]int{}}
}

// start runs the acker until the session ends; after the session started.
func (a *acker) start() {
	a.wg.Add(1)
	go a.run()
}

// edition records the edition a terminal's Status names.
func (a *acker) edition(terminal string, edition int) {
	a.mu.Lock()
	a.editions[terminal] = edition
	a.mu.Unlock()
}

// add queues the acknowledgement of jobID's result and returns at once.
func (a *acker) add(terminal, jobID string) {
	a.mu.Lock()
	if a.count >= maxPendingAcks {
		a.mu.Unlock()
		a.d.s.log.Warn("result acks queue full; dropped", "terminal", terminal, "job_id", jobID)
		return
	}
	a.pending[terminal] = append(a.pending[terminal], jobID)
	a.count++
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run signs what add queued, a window after the first of each round or at
// once when a full batch waits, until the session ends.
func (a *acker) run() {
	defer a.wg.Done()
	ctx := a.d.s.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		window := time.NewTimer(ackWindow)
	gather:
		for !a.full() {
			select {
			case <-ctx.Done():
				window.Stop()
				return
			case <-window.C:
				break gather
			case <-a.wake:
			}
		}
		window.Stop()
		a.flush()
	}
}

func (a *acker) full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count >= api.MaxResultAcks
}

// flush signs and queues every waiting acknowledgement.
func (a *acker) flush() {
	a.mu.Lock()
	pending, editions := a.pending, make(map[string]int, len(a.pending))
	for t := range pending {
		editions[t] = a.editions[t]
	}
	a.pending, a.count = map[string][]string{}, 0
	a.mu.Unlock()
	for terminal, ids := range pending {
		if editions[terminal] < 4 {
			for _, id := range ids {
				a.d.ackResult(terminal, id)
			}
			continue
		}
		for len(ids) > 0 {
			n := min(len(ids), api.MaxResultAcks)
			a.d.ackResults(terminal, dedupe(ids[:n]))
			ids = ids[n:]
		}
	}
}

// dedupe drops repeated ids (a result re-sent before its ack went out),
// which a ResultAcks may not carry.
func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ackResults signs one ResultAcks for ids and queues it without waiting.
func (d *Dispatcher) ackResults(terminal string, ids []string) {
	now := time.Now().UTC()
	a := &api.ResultAcks{V: api.Version, Terminal: terminal, JobIDs: ids, IssuedAt: now, ExpiresAt: now.Add(d.cfg.AckTTL)}
	env, err := d.cfg.Signer.SignResultAcks(a)
	if err != nil {
		d.s.log.Error("sign result acks", "terminal", terminal, "results", len(ids), "err", err)
		return
	}
	d.s.publishLater("result acks", api.Topic(d.cfg.Root, terminal, api.KindControl), env)
}
