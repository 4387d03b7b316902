package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"

	"github.com/tekenid/teken/api"
)

// memTerminal is the terminal side of the tests: the daemon's role with the
// store in memory. It verifies envelopes with the real Verifier.
type memTerminal struct {
	v    *api.Verifier
	term atomic.Pointer[Terminal]
	// gate, when set, holds HandleJob until it is closed.
	gate chan struct{}
	// failJobs counts HandleJob calls to fail, as a full store would.
	failJobs atomic.Int32
	// dropAcks counts ResultAck and ResultAcks messages to ignore, as if
	// they were lost.
	dropAcks atomic.Int32

	mu        sync.Mutex
	stored    map[string]int // job id → times stored (must stay 1)
	received  map[string]int // job id → times HandleJob saw it
	order     []string       // job ids in the order stored
	dups      int
	refused   []api.Receipt
	outbox    map[string]*api.Result // results awaiting a ResultAck
	delivered map[string]bool
	cancelled map[string]bool
	connects  int
	resends   int
	batches   int // ResultAcks taken
	singles   int // ResultAck taken
}

var _ TerminalHandler = (*memTerminal)(nil)

func newMemTerminal(v *api.Verifier) *memTerminal {
	return &memTerminal{v: v, stored: map[string]int{}, received: map[string]int{}, outbox: map[string]*api.Result{}, delivered: map[string]bool{}, cancelled: map[string]bool{}}
}

func (m *memTerminal) HandleJob(ctx context.Context, raw []byte) (api.Receipt, error) {
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return api.Receipt{}, ctx.Err()
		}
	}
	if m.failJobs.Add(-1) >= 0 {
		return api.Receipt{}, errors.New("store full")
	}
	r := api.Receipt{EnvelopeSHA256: api.EnvelopeSHA256(raw), At: time.Now().UTC()}
	j, _, err := m.v.VerifyJob(raw)
	if err != nil {
		r.Status, r.Reason, r.Detail = api.ReceiptRefused, api.Reason(err), err.Error()
		m.mu.Lock()
		m.refused = append(m.refused, r)
		m.mu.Unlock()
		return r, nil
	}
	r.JobID = j.JobID
	m.mu.Lock()
	defer m.mu.Unlock()
	m.received[j.JobID]++
	if m.stored[j.JobID] > 0 {
		m.dups++
		r.Status = api.ReceiptDuplicate
		return r, nil
	}
	m.stored[j.JobID]++
	m.order = append(m.order, j.JobID)
	r.Status = api.ReceiptStored
	return r, nil
}

func (m *memTerminal) HandleControl(_ context.Context, raw []byte) (ControlAnswer, error) {
	typ, err := api.ControlType(raw)
	if err != nil {
		return ControlAnswer{}, nil // logged and dropped by a real daemon
	}
	switch typ {
	case api.TypeResultAck:
		a, err := m.v.VerifyResultAck(raw)
		if err != nil {
			return ControlAnswer{}, nil
		}
		if m.dropAcks.Add(-1) >= 0 {
			return ControlAnswer{}, nil
		}
		m.mu.Lock()
		m.singles++
		delete(m.outbox, a.JobID)
		m.delivered[a.JobID] = true
		m.mu.Unlock()
	case api.TypeResultAcks:
		a, err := m.v.VerifyResultAcks(raw)
		if err != nil {
			return ControlAnswer{}, nil
		}
		if m.dropAcks.Add(-1) >= 0 {
			return ControlAnswer{}, nil
		}
		m.mu.Lock()
		m.batches++
		for _, id := range a.JobIDs {
			delete(m.outbox, id)
			m.delivered[id] = true
		}
		m.mu.Unlock()
	case api.TypeCancel:
		c, err := m.v.VerifyCancel(raw)
		if err != nil {
			return ControlAnswer{}, nil
		}
		m.mu.Lock()
		known := m.stored[c.JobID] > 0
		m.cancelled[c.JobID] = true
		m.mu.Unlock()
		if !known {
			return ControlAnswer{Receipt: &api.Receipt{For: api.ForCancel, JobID: c.JobID, EnvelopeSHA256: api.EnvelopeSHA256(raw), Status: api.ReceiptRefused, Reason: api.ReasonUnknownJob, At: time.Now().UTC()}}, nil
		}
	case api.TypeSyncRequest:
		r, err := m.v.VerifySyncRequest(raw)
		if err != nil {
			return ControlAnswer{}, nil
		}
		return ControlAnswer{SyncRequest: r.RequestID}, nil
	}
	return ControlAnswer{}, nil
}

// Resend re-sends the outbox, as the daemon does on a sync request, and
// returns a receipt per job held.
func (m *memTerminal) Resend(ctx context.Context) ([]api.Receipt, error) {
	m.mu.Lock()
	m.resends++
	var rs []api.Receipt
	for _, id := range m.order {
		if _, done := m.outbox[id]; !done && !m.delivered[id] {
			rs = append(rs, api.Receipt{For: api.ForJob, JobID: id, EnvelopeSHA256: strings.Repeat("0", 64), Status: api.ReceiptStored, At: time.Now().UTC()})
		}
	}
	m.mu.Unlock()
	m.Connected(ctx)
	return rs, nil
}

func (m *memTerminal) SyncState(context.Context) (api.Sync, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s api.Sync
	for _, id := range m.order {
		if _, done := m.outbox[id]; !done && !m.delivered[id] {
			s.JobsWaiting = append(s.JobsWaiting, id)
		}
	}
	for id := range m.outbox {
		s.ResultsUndelivered = append(s.ResultsUndelivered, id)
	}
	if len(s.JobsWaiting) > api.MaxSyncIDs {
		s.JobsWaiting = s.JobsWaiting[:api.MaxSyncIDs]
	}
	return s, nil
}

// Connected re-sends the outbox, as the daemon does after every connect.
func (m *memTerminal) Connected(ctx context.Context) {
	m.mu.Lock()
	m.connects++
	pending := make([]*api.Result, 0, len(m.outbox))
	for _, r := range m.outbox {
		pending = append(pending, r)
	}
	m.mu.Unlock()
	t := m.term.Load()
	if t == nil {
		return
	}
	for _, r := range pending {
		if err := publishResult(ctx, t, r); err != nil {
			return
		}
	}
}

// publishResult encodes r as the daemon does when a job ends, then
// publishes the bytes.
func publishResult(ctx context.Context, t *Terminal, r *api.Result) error {
	b, err := encodeResult(t, r)
	if err != nil {
		return err
	}
	return t.PublishResult(ctx, r.JobID, b)
}

func encodeResult(t *Terminal, r *api.Result) ([]byte, error) {
	r.V, r.Terminal = api.Version, t.cfg.TerminalID
	return api.Encode(r)
}

// finish ends a stored job with a result in the outbox and publishes it.
func (m *memTerminal) finish(ctx context.Context, jobID string) error {
	r := &api.Result{V: api.Version, JobID: jobID, Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()}
	m.mu.Lock()
	m.outbox[jobID] = r
	m.mu.Unlock()
	return publishResult(ctx, m.term.Load(), r)
}

func (m *memTerminal) storedCount() (jobs, maxTimes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.stored {
		maxTimes = max(maxTimes, n)
	}
	return len(m.stored), maxTimes
}

// receivedCount is how many distinct jobs reached HandleJob.
func (m *memTerminal) receivedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.received)
}

func (m *memTerminal) isDelivered(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delivered[id]
}

func newPKI(t testing.TB) (*api.Signer, *api.Verifier) {
	t.Helper()
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := api.KeySet(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return s, &api.Verifier{Keys: ks, Terminal: testTerminal}
}

const testTerminal = "kendari-setda-01"

func newUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func newJob(t testing.TB, id string) *api.Job {
	now := time.Now().UTC().Truncate(time.Second)
	return &api.Job{
		V: api.Version, JobID: id, Terminal: testTerminal,
		IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Signer:    api.Signatory{CertSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Name: "Kepala Bagian Umum"},
		Title:     "Undangan rapat koordinasi",
		Number:    "005/123/SETDA",
		Sender:    "Sekretariat Daerah",
		Documents: []api.Document{api.NewDocument("d1", "undangan.pdf", "application/pdf", []byte("%PDF-1.7 "+id))},
	}
}

// rig is a broker, a dispatcher and a terminal wired together.
type rig struct {
	b       testenv.Broker
	root    string // the topic root: a shared broker's rig has one of its own
	id      string // the terminal's client id
	signer  *api.Signer
	v       *api.Verifier
	term    *memTerminal
	t       *Terminal
	d       *Dispatcher
	results chan *api.Result
	recv    chan *api.Receipt
	status  chan *api.Status
	stalls  chan bool // the terminal's OnStall transitions
	syncs   chan *api.Sync
	nResult atomic.Int32
	resent  atomic.Int64 // jobs the dispatcher published again on Syncs
	// seenAtResend is how many distinct jobs the terminal had received
	// when the dispatcher first re-sent any; -1 until then.
	seenAtResend atomic.Int64
	lastPending  atomic.Int64 // distinct jobs received at the last Pending
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// rigBroker is what a rig runs on: a broker of the matrix, or a Mosquitto
// of the test's own for the tests that need one (TLS, Freeze).
type rigBroker interface {
	testenv.Broker | *testenv.Mosquitto
}

func matrixBroker[B rigBroker](b B) testenv.Broker {
	switch b := any(b).(type) {
	case testenv.Broker:
		return b
	case *testenv.Mosquitto:
		return testenv.Broker{Name: "mosquitto", URL: b.URL, Port: b.Port, Restart: b.Restart, Log: b.Log}
	}
	panic("unreachable")
}

func newRig[B rigBroker](t testing.TB, b B, conn Connection) *rig {
	t.Helper()
	return newRigWith(t, b, conn, nil)
}

// newRigWith is newRig with the dispatcher's configuration edited first.
// On a shared broker the rig has a topic root and client ids of its own.
func newRigWith[B rigBroker](t testing.TB, broker B, conn Connection, edit func(*DispatcherConfig)) *rig {
	t.Helper()
	r := &rig{b: matrixBroker(broker), root: api.DefaultRoot, id: "teken-" + testTerminal,
		results: make(chan *api.Result, 100000), recv: make(chan *api.Receipt, 100000), status: make(chan *api.Status, 1000), stalls: make(chan bool, 1000), syncs: make(chan *api.Sync, 1000)}
	if r.b.Shared {
		tag := newUUID(t)[:8]
		r.root, r.id = "test-"+tag+"/"+api.DefaultRoot, "teken-"+testTerminal+"-"+tag
	}
	r.seenAtResend.Store(-1)
	r.signer, r.v = newPKI(t)
	conn.Brokers = []string{r.b.URL}
	conn.Logger = testLogger(t)
	conn.MaxReconnectInterval = time.Second
	dc := conn
	dc.ClientID = "central-" + newUUID(t)[:8]
	r.term = newMemTerminal(r.v)
	var err error
	dcfg := DispatcherConfig{
		Connection: dc, Root: r.root, Signer: r.signer,
		Jobs: countingJobs{JobStore: NewMemoryJobs(), r: r},
		OnResult: func(_ context.Context, res *api.Result) error {
			r.nResult.Add(1)
			r.results <- res
			return nil
		},
		OnReceipt: func(_ context.Context, rc *api.Receipt) { r.recv <- rc },
		OnStatus: func(_ context.Context, s *api.Status) {
			select {
			case r.status <- s:
			default:
			}
		},
		OnSync: func(_ context.Context, s *api.Sync) {
			select {
			case r.syncs <- s:
			default:
			}
		},
		OnResend: func(_ string, n int) {
			if n > 0 {
				r.seenAtResend.CompareAndSwap(-1, r.lastPending.Load())
			}
			r.resent.Add(int64(n))
		},
	}
	if edit != nil {
		edit(&dcfg)
	}
	r.d, err = OpenDispatcher(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCtx(t, r.d.Close) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.d.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	r.openTerminal(t, conn)
	return r
}

// countingJobs notes, each time the dispatcher reads a terminal's pending
// jobs to answer a Sync, how many distinct jobs the terminal had received
// by then, so that the rig knows how many it had before any re-send.
type countingJobs struct {
	JobStore
	r *rig
}

func (c countingJobs) Pending(ctx context.Context, terminal string) ([]PendingJob, error) {
	c.r.lastPending.Store(int64(c.r.term.receivedCount()))
	return c.JobStore.Pending(ctx, terminal)
}

// dropped is how many of the published jobs the broker lost, as far as the
// terminal can tell: those it had not received when the dispatcher first
// re-sent any (none when nothing was re-sent).
func (r *rig) dropped(published int) int {
	seen := r.seenAtResend.Load()
	if seen < 0 {
		return 0
	}
	return published - int(seen)
}

func (r *rig) openTerminal(t testing.TB, conn Connection) {
	t.Helper()
	conn.Brokers = []string{r.b.URL}
	conn.Logger = testLogger(t)
	conn.MaxReconnectInterval = time.Second
	conn.ClientID = r.id
	tt, err := OpenTerminal(TerminalConfig{
		Connection: conn, Root: r.root, TerminalID: testTerminal, Handler: r.term,
		Status:       func() api.Status { return api.Status{Version: "test"} },
		SyncInterval: time.Second,
		JobWorkers:   16, // the transport's tests run the concurrent path
		OnStall: func(stalled bool, _ time.Time) {
			select {
			case r.stalls <- stalled:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.t = tt
	r.term.term.Store(tt)
	t.Cleanup(func() { closeCtx(t, tt.Close) })
	waitFor(t, 30*time.Second, func() error {
		if !tt.Connected() {
			return fmt.Errorf("terminal not connected (last error: %v)", tt.Err())
		}
		r.term.mu.Lock()
		defer r.term.mu.Unlock()
		if r.term.connects == 0 {
			return errors.New("connect hook not run")
		}
		return nil
	})
}

func closeCtx(t testing.TB, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := testenv.WaitFor(context.Background(), timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// ctxT bounds a test's waits on the broker: generous, for a loaded machine
// and RabbitMQ.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
