package route

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tekenid/teken/api"
)

// The ledger is a file of JSON lines, one record each, only ever appended
// to (and rewritten whole by compaction). Its state is what replaying every
// line from the first yields; the live Router and the replay share apply,
// so a state the Router reached is the state a restart finds.
//
// The operations, in the order a route meets them:
//
//	start     the route, with its PDF; step 0 pending
//	job       the current step's signed job envelope, before it is published
//	sent      the broker took that envelope (PUBACK)
//	signed    the current step's signed PDF; the next step becomes current
//	stopped   the current step ended otherwise (rejected, expired, failed,
//	          cancelled, refused): the route stops
//	forget    a finished route is dropped
//	snapshot  a route's whole state, as compaction writes it
const (
	opStart    = "start"
	opJob      = "job"
	opSent     = "sent"
	opSigned   = "signed"
	opStopped  = "stopped"
	opForget   = "forget"
	opSnapshot = "snapshot"
)

// record is one line of the ledger.
type record struct {
	Op    string    `json:"op"`
	At    time.Time `json:"at"`
	Route string    `json:"route"`
	Step  int       `json:"step"`

	Start    *Route    `json:"start,omitempty"`
	Snapshot *Status   `json:"snapshot,omitempty"`
	JobID    string    `json:"job_id,omitempty"`
	Expires  time.Time `json:"expires_at,omitzero"`
	Envelope []byte    `json:"envelope,omitempty"`
	PDF      []byte    `json:"pdf,omitempty"`

	State  StepState      `json:"state,omitempty"` // of stopped
	Reason api.ReasonCode `json:"reason,omitempty"`
	Detail string         `json:"detail,omitempty"`
}

// LineError says which line of a ledger could not be read or applied.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("ledger line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// book is the state a ledger describes: every route by id, and which
// route and step each job id belongs to.
type book struct {
	routes map[string]*Status
	jobs   map[string]jobRef
	seq    uint64 // records applied, to order pending jobs
}

type jobRef struct {
	route string
	step  int
}

func newBook() *book {
	return &book{routes: make(map[string]*Status), jobs: make(map[string]jobRef)}
}

// replay reads a ledger and returns its state and the offset just past the
// last whole line. A last line without its newline is a write a crash cut
// short: it is left out. Any other line that does not decode or apply is
// an error naming it.
func replay(r io.Reader) (*book, int64, error) {
	b := newBook()
	br := bufio.NewReaderSize(r, 64<<10)
	var end int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return b, end, nil // nothing, or a torn last line
		}
		if err != nil {
			return nil, end, fmt.Errorf("read ledger: %w", err)
		}
		var rec record
		if err := json.Unmarshal(bytes.TrimSuffix(line, []byte("\n")), &rec); err != nil {
			return nil, end, &LineError{Line: n, Err: err}
		}
		if err := b.apply(&rec); err != nil {
			return nil, end, &LineError{Line: n, Err: err}
		}
		end += int64(len(line))
	}
}

// apply changes the state by one record, or says why the record does not
// fit it, leaving the state as it was.
func (b *book) apply(rec *record) error {
	if rec.Op == opStart || rec.Op == opSnapshot {
		return b.add(rec)
	}
	s := b.routes[rec.Route]
	if s == nil {
		return fmt.Errorf("%s: unknown route %q", rec.Op, rec.Route)
	}
	if rec.Op == opForget {
		if s.State == RouteRunning {
			return fmt.Errorf("forget: route %q is still running", rec.Route)
		}
		for _, st := range s.Steps {
			delete(b.jobs, st.JobID)
		}
		delete(b.routes, rec.Route)
		return nil
	}
	if s.State != RouteRunning || rec.Step != s.Current {
		return fmt.Errorf("%s: route %q is %s at step %d, not running at step %d", rec.Op, rec.Route, s.State, s.Current, rec.Step)
	}
	st := &s.Steps[s.Current]
	switch rec.Op {
	case opJob:
		if st.JobID != "" {
			return fmt.Errorf("job: step %d of route %q has job %s already", rec.Step, rec.Route, st.JobID)
		}
		if err := api.ValidJobID(rec.JobID); err != nil {
			return fmt.Errorf("job: %w", err)
		}
		if _, ok := b.jobs[rec.JobID]; ok {
			return fmt.Errorf("job: job id %s used twice", rec.JobID)
		}
		if len(rec.Envelope) == 0 {
			return errors.New("job: no envelope")
		}
		st.JobID, st.Envelope, st.ExpiresAt = rec.JobID, rec.Envelope, rec.Expires
		b.jobs[rec.JobID] = jobRef{route: rec.Route, step: rec.Step}
	case opSent:
		if st.JobID == "" || rec.JobID != st.JobID {
			return fmt.Errorf("sent: job %s is not step %d's", rec.JobID, rec.Step)
		}
		if st.SentAt.IsZero() {
			st.SentAt = rec.At
		}
		st.State = StepSent
	case opSigned:
		if st.JobID == "" || rec.JobID != st.JobID {
			return fmt.Errorf("signed: job %s is not step %d's", rec.JobID, rec.Step)
		}
		if len(rec.PDF) == 0 {
			return errors.New("signed: no PDF")
		}
		st.State, st.SignedAt, st.Envelope = StepSigned, rec.At, nil
		s.PDF = rec.PDF
		s.Current++
		if s.Current == len(s.Steps) {
			s.State = RouteDone
		}
	case opStopped:
		if rec.JobID != st.JobID {
			return fmt.Errorf("stopped: job %s is not step %d's", rec.JobID, rec.Step)
		}
		if !rec.State.stops() {
			return fmt.Errorf("stopped: state %q does not stop a route", rec.State)
		}
		st.State, st.EndedAt, st.Envelope = rec.State, rec.At, nil
		st.Reason, st.Detail = rec.Reason, rec.Detail
		s.State = RouteStopped
	default:
		return fmt.Errorf("unknown operation %q", rec.Op)
	}
	s.UpdatedAt = rec.At
	b.seq++
	st.seq = b.seq
	return nil
}

// add takes a new route, from its start or its snapshot.
func (b *book) add(rec *record) error {
	var s *Status
	if rec.Op == opStart {
		if rec.Start == nil {
			return errors.New("start: no route")
		}
		if err := rec.Start.Validate(); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		s = newStatus(rec.Start, rec.At)
	} else {
		if rec.Snapshot == nil {
			return errors.New("snapshot: no route")
		}
		s = rec.Snapshot
		if err := s.check(); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	if rec.Route != s.Route.ID {
		return fmt.Errorf("%s: record names route %q, the route is %q", rec.Op, rec.Route, s.Route.ID)
	}
	if _, ok := b.routes[s.Route.ID]; ok {
		return fmt.Errorf("%s: route %q exists", rec.Op, s.Route.ID)
	}
	for i, st := range s.Steps {
		if st.JobID == "" {
			continue
		}
		if _, ok := b.jobs[st.JobID]; ok {
			return fmt.Errorf("%s: job id %s used twice", rec.Op, st.JobID)
		}
		b.jobs[st.JobID] = jobRef{route: s.Route.ID, step: i}
	}
	b.seq++
	if s.State == RouteRunning {
		s.Steps[s.Current].seq = b.seq
	}
	b.routes[s.Route.ID] = s
	return nil
}

// check tells whether a snapshot is a state apply could have reached.
func (s *Status) check() error {
	if err := s.Route.Validate(); err != nil {
		return err
	}
	if len(s.Steps) != len(s.Route.Steps) {
		return fmt.Errorf("%d step states for %d steps", len(s.Steps), len(s.Route.Steps))
	}
	if s.Current < 0 || s.Current > len(s.Steps) {
		return fmt.Errorf("current step %d out of range", s.Current)
	}
	if len(s.PDF) == 0 {
		return errors.New("no PDF")
	}
	seen := map[string]bool{}
	for i := range s.Steps {
		st := &s.Steps[i]
		st.Step = s.Route.Steps[i]
		if st.JobID != "" {
			if err := api.ValidJobID(st.JobID); err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			if seen[st.JobID] {
				return fmt.Errorf("step %d: job id %s used twice", i, st.JobID)
			}
			seen[st.JobID] = true
		}
		switch {
		case i < s.Current:
			if st.State != StepSigned {
				return fmt.Errorf("step %d: state %q before the current step", i, st.State)
			}
		case i > s.Current:
			if st.JobID != "" || st.State != StepPending {
				return fmt.Errorf("step %d: a step after the current one has begun", i)
			}
		case s.State == RouteRunning:
			if st.State != StepPending && st.State != StepSent {
				return fmt.Errorf("step %d: state %q of the current step", i, st.State)
			}
		case s.State == RouteStopped:
			if !st.State.stops() {
				return fmt.Errorf("step %d: state %q of a stopped route's step", i, st.State)
			}
		}
		if i == s.Current && s.State == RouteRunning && st.JobID != "" && len(st.Envelope) == 0 {
			return fmt.Errorf("step %d: job %s without its envelope", i, st.JobID)
		}
	}
	switch s.State {
	case RouteRunning:
		if s.Current == len(s.Steps) {
			return errors.New("running with every step signed")
		}
	case RouteDone:
		if s.Current != len(s.Steps) {
			return errors.New("done with steps to sign")
		}
	case RouteStopped:
		if s.Current == len(s.Steps) {
			return errors.New("stopped with every step signed")
		}
	default:
		return fmt.Errorf("state %q", s.State)
	}
	return nil
}

// snapshotRecords are the records that make b again: one snapshot per
// route, the running ones' in the order their current jobs were made, so a
// replay lists pending jobs oldest first as before. Only the latest PDF is
// kept, and no envelope of a finished step.
func (b *book) snapshotRecords() []record {
	ids := make([]string, 0, len(b.routes))
	for id := range b.routes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y string) int {
		return cmp.Compare(b.routes[x].order(), b.routes[y].order())
	})
	out := make([]record, 0, len(ids))
	for _, id := range ids {
		s := b.routes[id]
		out = append(out, record{Op: opSnapshot, At: s.UpdatedAt, Route: id, Snapshot: s})
	}
	return out
}

// order is where a route's latest change stands among all others.
func (s *Status) order() uint64 {
	if s.State == RouteRunning {
		return s.Steps[s.Current].seq
	}
	return 0 // finished routes first: their order does not matter
}

// encodeRecords writes records as JSON lines.
func encodeRecords(recs []record) ([]byte, error) {
	var buf bytes.Buffer
	for i := range recs {
		line, err := json.Marshal(&recs[i])
		if err != nil {
			return nil, fmt.Errorf("encode %s record of route %q: %w", recs[i].Op, recs[i].Route, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// writeAtomic replaces path with data: a temporary file beside it, synced,
// renamed over it, and the directory synced so the rename itself survives
// a power cut.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".compact"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadLedger reads a ledger file without taking it over, as tekenctl
// does while a Router may be appending to it: a torn last line is left
// out, not cut off. It returns every route's state, oldest change first.
func ReadLedger(path string) ([]Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer f.Close()
	b, _, err := replay(f)
	if err != nil {
		return nil, fmt.Errorf("read ledger %s: %w", path, err)
	}
	return b.list(), nil
}

// list returns copies of every route's state, by when it started.
func (b *book) list() []Status {
	out := make([]Status, 0, len(b.routes))
	for _, s := range b.routes {
		out = append(out, s.clone())
	}
	slices.SortFunc(out, func(x, y Status) int {
		if c := x.StartedAt.Compare(y.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(x.Route.ID, y.Route.ID)
	})
	return out
}

// commit writes records to the ledger, syncs it and only then applies
// them: nothing the Router acknowledges or publishes is ahead of the
// disk. A failed write is cut off again, so it cannot end up as a broken
// line in the middle of the file; r.mu is held.
func (r *Router) commit(recs []record) error {
	if r.broken != nil {
		return fmt.Errorf("ledger unusable: %w", r.broken)
	}
	data, err := encodeRecords(recs)
	if err != nil {
		return err
	}
	if _, err = r.f.Write(data); err == nil {
		err = r.f.Sync()
	}
	if err != nil {
		if terr := r.f.Truncate(r.size); terr != nil {
			r.broken = fmt.Errorf("cut off a failed write: %w (after: %v)", terr, err)
		}
		return fmt.Errorf("write ledger: %w", err)
	}
	r.size += int64(len(data))
	for i := range recs {
		if err := r.b.apply(&recs[i]); err != nil {
			// On disk, and not applicable: the next Open would refuse
			// the file, so nothing more is written after it.
			r.broken = fmt.Errorf("record %s of route %q does not apply: %w", recs[i].Op, recs[i].Route, err)
			return r.broken
		}
	}
	if r.size > r.compactAt {
		r.compact()
	}
	return nil
}

// compact rewrites the ledger with one snapshot per route. Whether or not
// it works, the file at the path is complete (the old or the new one), and
// the Router appends to it from here on.
func (r *Router) compact() {
	data, err := encodeRecords(r.b.snapshotRecords())
	if err == nil {
		err = writeAtomic(r.cfg.Path, data)
	}
	if err != nil {
		r.log.Error("route ledger: compaction failed, appending on", "path", r.cfg.Path, "err", err)
	}
	f, oerr := os.OpenFile(r.cfg.Path, os.O_RDWR|os.O_APPEND, 0o600)
	var fi os.FileInfo
	if oerr == nil {
		fi, oerr = f.Stat()
	}
	if oerr != nil {
		r.broken = fmt.Errorf("reopen after compaction: %w", oerr)
		return
	}
	r.f.Close()
	r.f, r.size = f, fi.Size()
	r.compactAt = max(r.cfg.CompactBytes, 2*r.size)
}

// Get returns a route's state.
func (r *Router) Get(id string) (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.b.routes[id]
	if !ok {
		return Status{}, false
	}
	return s.clone(), true
}

// Routes returns every route's state, by when it started.
func (r *Router) Routes() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.list()
}

// Owns reports whether a job id is one of a route's: a central system
// with other jobs on the same dispatcher hands the rest of its results
// elsewhere.
func (r *Router) Owns(jobID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.b.jobs[jobID]
	return ok
}

// Forget drops a finished route from the ledger.
func (r *Router) Forget(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.b.routes[id]
	switch {
	case !ok:
		return fmt.Errorf("forget route %s: %w", id, ErrUnknown)
	case s.State == RouteRunning:
		return fmt.Errorf("forget route %s: still running", id)
	}
	return r.commit([]record{{Op: opForget, At: r.now(), Route: id}})
}

// Close stops publishing, waits for it and gives the ledger up.
func (r *Router) Close(ctx context.Context) error {
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close router: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.f.Close()
	if lerr := r.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close router: %w", err)
	}
	return nil
}
