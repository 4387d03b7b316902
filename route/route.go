// Package route carries a letter through its route on the central side: an
// ordered list of steps, each an official who initials (paraf) or signs
// (ttd) the letter on a terminal. Each step's job carries the PDF as the
// step before signed it; a signed result advances the route, any other
// outcome stops it with its reason. The Router keeps every route's progress
// in a ledger file of its own, written ahead of everything it acknowledges
// or publishes, so a central system killed mid-route resumes where it was.
//
// Wiring, with a transport.Dispatcher as the Publisher:
//
//	r, _ := route.Open(route.Config{Path: "routes.ledger", Signer: signer})
//	d, _ := transport.OpenDispatcher(transport.DispatcherConfig{
//		Connection: conn, Signer: signer,
//		Jobs: r, OnResult: r.OnResult, OnReceipt: r.OnReceipt,
//	})
//	_ = r.Resume(ctx, d)
//	_ = r.Start(ctx, letter)
package route

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// The kinds of mark a step asks for.
const (
	KindParaf = "paraf" // initials of those who drafted and checked the letter
	KindTTD   = "ttd"   // the signature (TTE) of the official who issues it
)

// MaxSteps bounds a route's steps.
const MaxSteps = 32

// Step is one hand a letter passes through.
type Step struct {
	Signer   api.Signatory `json:"signer"`
	Kind     string        `json:"kind"` // KindParaf or KindTTD
	Terminal string        `json:"terminal"`
}

// Route is a letter and the hands it passes through, in order.
type Route struct {
	ID     string      `json:"id"` // 1-64 letters, digits, '.', '_' or '-'
	Title  string      `json:"title"`
	Number string      `json:"number"`
	Sender string      `json:"sender"`
	Fields []api.Field `json:"fields,omitempty"`
	// DocumentID and DocumentName name the PDF in each job; "surat.pdf"
	// and the id when empty.
	DocumentID   string `json:"document_id,omitempty"`
	DocumentName string `json:"document_name,omitempty"`
	PDF          []byte `json:"pdf"` // the letter before any step
	Steps        []Step `json:"steps"`
}

var (
	routeIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	certPattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks what the Router needs of a route; each job is checked
// again in full (api.Job.Validate) when it is built.
func (r *Route) Validate() error {
	if !routeIDPattern.MatchString(r.ID) {
		return fmt.Errorf("route id %q: want 1-64 letters, digits, '.', '_' or '-'", r.ID)
	}
	if len(r.PDF) == 0 {
		return fmt.Errorf("route %s: no PDF", r.ID)
	}
	if len(r.Steps) == 0 || len(r.Steps) > MaxSteps {
		return fmt.Errorf("route %s: %d steps, want 1 to %d", r.ID, len(r.Steps), MaxSteps)
	}
	for i, s := range r.Steps {
		if s.Kind != KindParaf && s.Kind != KindTTD {
			return fmt.Errorf("route %s: steps[%d].kind %q: want %s or %s", r.ID, i, s.Kind, KindParaf, KindTTD)
		}
		if err := api.ValidTerminalID(s.Terminal); err != nil {
			return fmt.Errorf("route %s: steps[%d].terminal: %w", r.ID, i, err)
		}
		if !certPattern.MatchString(s.Signer.CertSHA256) {
			return fmt.Errorf("route %s: steps[%d].signer.cert_sha256 %q: want 64 lower-case hex digits", r.ID, i, s.Signer.CertSHA256)
		}
	}
	return nil
}

func (r *Route) documentID() string {
	if r.DocumentID == "" {
		return "surat.pdf"
	}
	return r.DocumentID
}

// Publisher publishes a signed job; *transport.Dispatcher is one.
type Publisher interface {
	PublishEnvelope(ctx context.Context, p transport.PendingJob) error
}

var _ Publisher = (*transport.Dispatcher)(nil)

// JobSigner signs jobs; *api.Signer is one.
type JobSigner interface {
	SignJob(j *api.Job) ([]byte, error)
}

// BuildFunc makes the job of a route's step index, carrying pdf: the PDF as
// the step before signed it. The Router sets the job id when it is empty
// and checks the job (api.Job.Validate, its terminal and signer) after. It
// runs under the Router's lock, so it must not call the Router. A job
// that cannot be made for step 0 fails Start; for a later step it stops
// the route (failed, with the error), since asking again would fail alike.
type BuildFunc func(r *Route, step Step, index int, pdf []byte) (*api.Job, error)

// NewJob is the job a step gets by default: a v1 job with the letter's
// fields and one pades document, the PDF, with a visible signature block
// on its last page. A BuildFunc starts from it to add what a kind of mark
// needs.
func NewJob(r *Route, step Step, pdf []byte, now time.Time, expiry time.Duration) *api.Job {
	now = now.UTC().Truncate(time.Second)
	name := r.DocumentName
	if name == "" {
		name = r.documentID()
	}
	d := api.NewDocument(r.documentID(), name, "application/pdf", pdf)
	d.Format, d.Visible = api.FormatPAdES, &api.Visible{}
	return &api.Job{
		V: api.Version, JobID: api.NewJobID(), Terminal: step.Terminal,
		IssuedAt: now, ExpiresAt: now.Add(expiry), Signer: step.Signer,
		Title: r.Title, Number: r.Number, Sender: r.Sender, Fields: slices.Clone(r.Fields),
		Documents: []api.Document{d},
	}
}

// Config configures Open. Path and Signer are required.
type Config struct {
	Path   string // the ledger file; the Router owns it and Path+".lock"
	Signer JobSigner
	// Build makes each step's job; NewJob with Expiry when nil.
	Build BuildFunc
	// Expiry is the window of the default jobs; zero means 7 days.
	Expiry time.Duration
	// CompactBytes: past this size the ledger is rewritten with only
	// what it holds now. Zero means 64 MiB.
	CompactBytes int64
	// RetryMin and RetryMax bound the backoff between attempts to publish
	// a job the broker did not take; zero means 1s and 30s.
	RetryMin, RetryMax time.Duration
	// PublishTimeout bounds one publication; zero means 30s.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time // time.Now when nil
}

// ErrExists says a route of that id is in the ledger already.
var ErrExists = errors.New("a route of that id exists")

// ErrUnknown says no route of that id is in the ledger.
var ErrUnknown = errors.New("no route of that id")

// ErrNoPublisher says Resume was not called yet.
var ErrNoPublisher = errors.New("the router has no publisher yet (Resume)")

// Router carries routes from step to step and keeps their ledger. It is
// safe for concurrent use.
type Router struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	b         *book
	f         *os.File // the ledger, opened for appending
	lock      *os.File
	size      int64
	compactAt int64
	broken    error                 // a write that could not be undone: nothing more is written
	dropped   map[string]bool       // job ids the dispatcher forgot (a cancel, a refusal)
	others    *transport.MemoryJobs // pending jobs of no route
	pub       Publisher

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ transport.JobStore = (*Router)(nil)

// Open takes over the ledger at cfg.Path, creating it when absent, and
// replays it. A torn last line is cut off; any other bad line is a
// *LineError. Nothing is published before Resume.
func Open(cfg Config) (*Router, error) {
	if cfg.Path == "" {
		return nil, errors.New("open router: no ledger path")
	}
	if cfg.Signer == nil {
		return nil, errors.New("open router: no signer")
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = 7 * 24 * time.Hour
	}
	if cfg.CompactBytes <= 0 {
		cfg.CompactBytes = 64 << 20
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(30*time.Second, cfg.RetryMin)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Build == nil {
		cfg.Build = func(r *Route, step Step, _ int, pdf []byte) (*api.Job, error) {
			return NewJob(r, step, pdf, cfg.Now(), cfg.Expiry), nil
		}
	}
	lock, err := os.OpenFile(cfg.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open router: %w", err)
	}
	// The lock is on a file of its own: compaction replaces the ledger's
	// inode, and a lock on it would go with the old one.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open router: ledger %s is held by another router: %w", cfg.Path, err)
	}
	r := &Router{cfg: cfg, log: cfg.Logger, lock: lock, dropped: map[string]bool{}, others: transport.NewMemoryJobs(), kick: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := r.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open router: %w", err)
	}
	return r, nil
}

// load replays the ledger and cuts off a torn last line.
func (r *Router) load() error {
	f, err := os.OpenFile(r.cfg.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b, end, err := replay(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", r.cfg.Path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if fi.Size() > end {
		r.log.Warn("route ledger: torn last line cut off", "path", r.cfg.Path, "bytes", fi.Size()-end)
		err := f.Truncate(end)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("cut torn line of %s: %w", r.cfg.Path, err)
		}
	}
	r.f, r.b, r.size = f, b, end
	r.compactAt = max(r.cfg.CompactBytes, 2*end)
	return nil
}

// Resume gives the Router its publisher and publishes every job the
// ledger owes: a step whose job was recorded and not taken by the broker,
// or not yet made (a crash between recording a signed step and making the
// next one's job). A job published before is published again as the same
// bytes, which a terminal stores once.
func (r *Router) Resume(ctx context.Context, p Publisher) error {
	if p == nil {
		return errors.New("resume routes: no publisher")
	}
	r.mu.Lock()
	r.pub = p
	r.mu.Unlock()
	r.once.Do(func() {
		r.wg.Add(1)
		go r.run()
	})
	r.wake()
	return ctx.Err()
}

// Start records a route and publishes its first step's job. An error after
// the route was recorded (the broker did not take the job) still leaves it
// started: the job is published again in the background and on the
// terminal's Sync; only a job larger than the broker takes
// (transport.ErrTooLarge) stops it, failed.
func (r *Router) Start(ctx context.Context, rt Route) error {
	if err := rt.Validate(); err != nil {
		return fmt.Errorf("start route: %w", err)
	}
	rt.PDF = bytes.Clone(rt.PDF)
	rt.Fields, rt.Steps = slices.Clone(rt.Fields), slices.Clone(rt.Steps)
	r.mu.Lock()
	if r.pub == nil {
		r.mu.Unlock()
		return fmt.Errorf("start route %s: %w", rt.ID, ErrNoPublisher)
	}
	if _, ok := r.b.routes[rt.ID]; ok {
		r.mu.Unlock()
		return fmt.Errorf("start route %s: %w", rt.ID, ErrExists)
	}
	now := r.now()
	job := r.jobRecord(&rt, 0, rt.PDF, now)
	if job.Op == opStopped {
		// Nothing is recorded: the route as given cannot begin.
		r.mu.Unlock()
		return fmt.Errorf("start route %s: %s", rt.ID, job.Detail)
	}
	err := r.commit([]record{{Op: opStart, At: now, Route: rt.ID, Start: &rt}, job})
	p, _ := r.owed(rt.ID)
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start route %s: %w", rt.ID, err)
	}
	if err := r.publish(ctx, p); err != nil {
		r.wake()
		return fmt.Errorf("start route %s: %w", rt.ID, err)
	}
	return nil
}

// OnResult takes a result, for DispatcherConfig.OnResult. A signed result
// of a route's current step records the signed PDF and the next step's
// job, and returns nil only once both are on disk; the job is published
// after. Any other outcome stops the route. A result of a step done
// before, or of a job of no route, changes nothing and returns nil.
func (r *Router) OnResult(_ context.Context, res *api.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.b.jobs[res.JobID]
	if !ok {
		return nil
	}
	s := r.b.routes[ref.route]
	if s.State != RouteRunning || s.Current != ref.step {
		return nil // a duplicate, or of a step that ended
	}
	st := &s.Steps[ref.step]
	if res.Terminal != st.Terminal {
		r.log.Warn("route result from another terminal dropped", "route", s.Route.ID, "job_id", res.JobID, "terminal", res.Terminal, "want", st.Terminal)
		return nil
	}
	now := r.now()
	var recs []record
	if res.Outcome == api.OutcomeSigned {
		pdf, err := signedPDF(res, s)
		if err != nil {
			recs = append(recs, record{Op: opStopped, At: now, Route: s.Route.ID, Step: ref.step, JobID: res.JobID,
				State: StepFailed, Detail: err.Error()})
		} else {
			recs = append(recs, record{Op: opSigned, At: now, Route: s.Route.ID, Step: ref.step, JobID: res.JobID, PDF: pdf})
			if next := ref.step + 1; next < len(s.Steps) {
				recs = append(recs, r.jobRecord(&s.Route, next, pdf, now))
			}
		}
	} else {
		state := StepState(res.Outcome)
		if !state.stops() {
			state = StepFailed
		}
		recs = append(recs, record{Op: opStopped, At: now, Route: s.Route.ID, Step: ref.step, JobID: res.JobID,
			State: state, Reason: res.Reason, Detail: res.Detail})
	}
	if err := r.commit(recs); err != nil {
		return fmt.Errorf("route %s step %d: %w", s.Route.ID, ref.step, err)
	}
	r.wake()
	return nil
}

// signedPDF is the signed PDF of the route's document in a result: it
// must extend the PDF the step was sent, since a PAdES signature is an
// incremental update appended to it.
func signedPDF(res *api.Result, s *Status) ([]byte, error) {
	id := s.Route.documentID()
	for _, d := range res.Documents {
		if d.ID != id {
			continue
		}
		if d.Format != api.FormatPAdES {
			return nil, fmt.Errorf("document %s signed as %q, not pades", id, d.Format)
		}
		if len(d.Signature) <= len(s.PDF) || !bytes.HasPrefix(d.Signature, s.PDF) {
			return nil, fmt.Errorf("the signed PDF of %s does not extend the PDF sent", id)
		}
		return d.Signature, nil
	}
	return nil, fmt.Errorf("signed result without document %s", id)
}

// OnReceipt stops a route whose current job the terminal refused, for
// DispatcherConfig.OnReceipt: the same envelope would be refused again.
func (r *Router) OnReceipt(_ context.Context, rc *api.Receipt) {
	if rc.Status != api.ReceiptRefused || (rc.For != "" && rc.For != api.ForJob) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.b.jobs[rc.JobID]
	if !ok {
		return
	}
	s := r.b.routes[ref.route]
	if s.State != RouteRunning || s.Current != ref.step || s.Steps[ref.step].Terminal != rc.Terminal {
		return
	}
	rec := record{Op: opStopped, At: r.now(), Route: s.Route.ID, Step: ref.step, JobID: rc.JobID,
		State: StepRefused, Reason: rc.Reason, Detail: rc.Detail}
	if err := r.commit([]record{rec}); err != nil {
		r.log.Error("route: record refused job", "route", s.Route.ID, "job_id", rc.JobID, "err", err)
	}
}

// jobRecord makes, signs and checks the job of a route's step, as a job
// record; a job that cannot be made is a stopped record: asking again
// would fail the same way.
func (r *Router) jobRecord(rt *Route, index int, pdf []byte, now time.Time) record {
	step := rt.Steps[index]
	rec := record{Op: opJob, At: now, Route: rt.ID, Step: index}
	j, err := r.cfg.Build(rt, step, index, pdf)
	if err == nil && j == nil {
		err = errors.New("no job")
	}
	if err == nil {
		if j.JobID == "" {
			j.JobID = api.NewJobID()
		}
		if j.V == 0 {
			j.V = api.Version
		}
		switch _, used := r.b.jobs[j.JobID]; {
		case used:
			err = fmt.Errorf("job id %s used before", j.JobID)
		case j.Terminal != step.Terminal || j.Signer.CertSHA256 != step.Signer.CertSHA256:
			err = fmt.Errorf("job for %s, signer %s: the step names %s, signer %s", j.Terminal, j.Signer.CertSHA256, step.Terminal, step.Signer.CertSHA256)
		default:
			err = j.Validate()
		}
	}
	var env []byte
	if err == nil {
		env, err = r.cfg.Signer.SignJob(j)
	}
	if err != nil {
		return record{Op: opStopped, At: now, Route: rt.ID, Step: index, State: StepFailed,
			Detail: fmt.Sprintf("make the job of step %d: %v", index, err)}
	}
	rec.JobID, rec.Expires, rec.Envelope = j.JobID, j.ExpiresAt, env
	return rec
}

func (r *Router) now() time.Time { return r.cfg.Now().UTC() }

// owed returns the current job of a running route that the broker has not
// taken yet, if any; r.mu is held.
func (r *Router) owed(id string) (transport.PendingJob, bool) {
	s := r.b.routes[id]
	if s == nil || s.State != RouteRunning {
		return transport.PendingJob{}, false
	}
	st := &s.Steps[s.Current]
	if st.JobID == "" || st.State != StepPending || r.dropped[st.JobID] {
		return transport.PendingJob{}, false
	}
	return transport.PendingJob{Terminal: st.Terminal, JobID: st.JobID, ExpiresAt: st.ExpiresAt, Envelope: st.Envelope}, true
}

// publish hands one job to the publisher and records that the broker took
// it, unless the route moved on meanwhile (its result came first).
func (r *Router) publish(ctx context.Context, p transport.PendingJob) error {
	r.mu.Lock()
	pub := r.pub
	r.mu.Unlock()
	if pub == nil {
		return ErrNoPublisher
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	err := pub.PublishEnvelope(pctx, p)
	cancel()
	tooLarge := errors.Is(err, transport.ErrTooLarge)
	if err != nil && !tooLarge {
		return fmt.Errorf("publish job %s: %w", p.JobID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.b.jobs[p.JobID]
	if !ok {
		return err
	}
	s := r.b.routes[ref.route]
	if s.State != RouteRunning || s.Current != ref.step || s.Steps[ref.step].State != StepPending {
		return err
	}
	rec := record{Op: opSent, At: r.now(), Route: ref.route, Step: ref.step, JobID: p.JobID}
	if tooLarge {
		// The broker would drop it every time: the route cannot go on.
		rec.Op, rec.State, rec.Detail = opStopped, StepFailed, err.Error()
	}
	if cerr := r.commit([]record{rec}); cerr != nil {
		return cerr
	}
	if tooLarge {
		return fmt.Errorf("publish job %s: %w", p.JobID, err)
	}
	return nil
}

func (r *Router) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run publishes what the ledger owes whenever woken, and again with capped
// backoff while the broker does not take it.
func (r *Router) run() {
	defer r.wg.Done()
	wait := r.cfg.RetryMin
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		}
		if r.publishOwed() {
			wait = r.cfg.RetryMin
			continue
		}
		retry.Reset(wait)
		wait = min(2*wait, r.cfg.RetryMax)
	}
}

// publishOwed makes the jobs of running routes that have none (after a
// crash between a signed step and its successor's job) and publishes every
// job not yet taken, oldest first; it reports whether all went out.
func (r *Router) publishOwed() bool {
	r.mu.Lock()
	var owed []transport.PendingJob
	var seqs []uint64
	for id, s := range r.b.routes {
		if s.State == RouteRunning && s.Steps[s.Current].JobID == "" {
			rec := r.jobRecord(&s.Route, s.Current, s.PDF, r.now())
			if err := r.commit([]record{rec}); err != nil {
				r.log.Error("route: record job", "route", id, "step", s.Current, "err", err)
				r.mu.Unlock()
				return false
			}
		}
		if p, ok := r.owed(id); ok {
			owed = append(owed, p)
			seqs = append(seqs, s.Steps[s.Current].seq)
		}
	}
	r.mu.Unlock()
	idx := make([]int, len(owed))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(seqs[a], seqs[b]) })
	ok := true
	for _, i := range idx {
		if r.ctx.Err() != nil {
			return false
		}
		if err := r.publish(r.ctx, owed[i]); err != nil {
			r.log.Warn("route: job not published, will retry", "job_id", owed[i].JobID, "terminal", owed[i].Terminal, "err", err)
			ok = false
		}
	}
	return ok
}
