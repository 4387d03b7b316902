package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout       = time.Second
	DefaultMaxSize       = 1 << 30
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultSweepInterval = 15 * time.Second
	// DefaultReplaySkew is the same as api.DefaultSkew, the envelope
	// verifier's default clock-skew tolerance (queue does not import api).
	DefaultReplaySkew = 2 * time.Minute
)

// Options configure a Store. Zero fields take the defaults above.
type Options struct {
	// Timeout bounds the wait for the file lock, so a second process on the
	// same file fails fast with ErrLocked instead of hanging.
	Timeout time.Duration
	// MaxSize caps the file size in bytes; negative means no cap. New jobs
	// are refused with ErrFull once 7/8 of it is reached; the last eighth is
	// kept for transitions, deliveries and pruning so a full store can drain.
	MaxSize int
	// Retention is how long done jobs and delivered results are kept.
	// A pruned job leaves a replay guard behind for as long as its
	// envelope could still be accepted (see Prune and ReplaySkew).
	Retention time.Duration
	// ReplaySkew is how long past a pruned job's ExpiresAt its replay
	// guard is kept. It must be at least the envelope verifier's clock-skew
	// tolerance (api.Verifier.Skew, tekend's dispatcher.clock_skew), which
	// accepts an envelope until ExpiresAt plus that skew; a shorter one
	// opens a gap in which a replayed envelope passes the verifier and
	// finds no guard. The default is DefaultReplaySkew, 2 minutes, the
	// verifier's default.
	ReplaySkew time.Duration
	// TerminalID is written into every audit entry.
	TerminalID string
	// Now is the clock; tests inject a fake one.
	Now func() time.Time
	// Logger receives the store's logs.
	Logger *slog.Logger
	// SweepInterval is how often old records are pruned and expired jobs
	// swept; the sweeper also sweeps at Open and whenever the soonest
	// expiry of a job waiting passes.
	SweepInterval time.Duration
	// ExpiryPayload encodes the outbox payload of a job the sweeper
	// expires, in the same transaction that expires it. Nil leaves the
	// payload empty: the Result then carries only the job id, outcome and
	// reason, and a publisher that sends stored bytes as they are (tekend's
	// outbox) has nothing to send, so a store whose jobs can expire needs
	// it.
	ExpiryPayload func(Job) []byte
	// OnExpired, when set, is called with the jobs a sweep expired, as
	// stored (done, outcome expired, with their ResultSeq) but without
	// their envelopes, once the transaction that expired them is durable:
	// a reader it starts sees them done and their Results in the outbox.
	// It runs on the goroutine that called Sweep — the sweeper's own for
	// the sweeps the store makes (at Open, when the soonest expiry passes,
	// and every SweepInterval) — once per transaction, and holds up the
	// next sweep while it runs; it may read and write the store.
	OnExpired func(jobs []Job)
}

func (o *Options) fill() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.ReplaySkew <= 0 {
		o.ReplaySkew = DefaultReplaySkew
	}
}

// Store is the terminal's durable queue: one bbolt file, a committer
// goroutine and a sweeper goroutine, both stopped by Close.
type Store struct {
	db       *bolt.DB
	path     string
	opts     Options
	readOnly bool
	log      *slog.Logger

	// counts of jobs by state and of undelivered results, updated after
	// each commit so metrics never need a transaction.
	counts      [Done + 1]atomic.Int64
	undelivered atomic.Int64
	held        atomic.Int64
	guards      atomic.Int64
	commits     atomic.Uint64

	mu      sync.Mutex // guards queue and closed
	queue   []*op
	closed  bool
	wake    chan struct{}
	ctx     context.Context // ends when Close starts; stops the sweeper
	cancel  context.CancelFunc
	done    sync.WaitGroup
	closeMu sync.Mutex
	dbGone  bool

	// room says whether commits find room (room.go).
	room room
	// owed are the moves back to ready the store could not write yet,
	// by job id (owed.go); repairDue asks the committer to write them.
	owedMu    sync.Mutex
	owed      map[string]owedMove
	repairDue bool // committer only
	// The sweeper's timer: armedAt is the expiry it waits for (zero: none
	// or being computed); rearm wakes it to look again.
	expMu   sync.Mutex
	armedAt time.Time
	rearm   chan struct{}
	// oldest is the arrival of the oldest waiting job, kept from commit
	// to commit so a metrics scrape reads no record (waiting.go).
	oldest oldestWaiting
}

// Open opens or creates the store at path, migrates its layout, moves jobs
// left in signing by a crash back to ready (with an audit entry), and starts
// the committer and the sweeper, which sweeps expired jobs at once.
//
// A file with the current layout opens on a full filesystem too: when the
// recovery of jobs left in signing finds no room, the store is full, shows
// those jobs as ready and writes their recovery with the first write that
// goes through (see Full).
func Open(path string, opts Options) (*Store, error) {
	opts.fill()
	db, err := openBolt(path, opts, false)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, opts: opts, log: opts.Logger.With("db", path),
		wake: make(chan struct{}, 1), rearm: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	deferred, err := s.prepare()
	if err != nil {
		s.cancel()
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, mapBoltErr(err))
	}
	if err := s.loadCounts(); err != nil {
		s.cancel()
		_ = db.Close()
		return nil, err
	}
	dropMapping(db) // what the scans above touched leaves the resident set
	if len(deferred) > 0 {
		s.owe(deferred...)
		s.repairDue = true
	}
	s.publishRoom()
	s.done.Add(2)
	go s.commitLoop()
	go s.sweepLoop()
	return s, nil
}

// OpenReadOnly opens the store for reading (audit export and verify) under
// a shared lock. It fails with ErrLocked while a tekend holds the file; use
// a copy (Store.Backup) of a live file.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	opts.fill()
	db, err := openBolt(path, opts, true)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, opts: opts, readOnly: true, log: opts.Logger.With("db", path)}
	if err := db.View(func(tx *bolt.Tx) error { _, err := checkLayout(tx); return err }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := s.loadCounts(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func openBolt(path string, opts Options, readOnly bool) (*bolt.DB, error) {
	bo := &bolt.Options{
		Timeout:  opts.Timeout,
		ReadOnly: readOnly,
		// The hashmap freelist stays fast on a fragmented file; the freelist
		// is still synced (NoFreelistSync off) so reopening after a crash
		// does not have to scan the whole file.
		FreelistType: bolt.FreelistMapType,
	}
	if opts.MaxSize > 0 {
		bo.MaxSize = opts.MaxSize
		// Mapped at its cap from the start (address space, not memory):
		// a commit that grows the mapping waits for every open read
		// transaction, a backup streaming for minutes included, and
		// everything behind the commit would wait with it.
		bo.InitialMmapSize = opts.MaxSize
	}
	db, err := bolt.Open(path, 0o600, bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: another tekend holds it (waited %s): %w", path, opts.Timeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, mapBoltErr(err))
	}
	db.AllocSize = allocSize
	return db, nil
}

// Close stops the sweeper, commits what is already queued, stops the
// committer and closes the file. It returns early with ctx's error if the
// goroutines do not stop in time.
func (s *Store) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.dbGone {
		return nil
	}
	if !s.readOnly {
		s.mu.Lock()
		if !s.closed {
			s.closed = true
			s.cancel()
			s.signal()
		}
		s.mu.Unlock()
		stopped := make(chan struct{})
		go func() { s.done.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			return fmt.Errorf("close %s: %w", s.path, ctx.Err())
		}
	}
	s.dbGone = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// Stats is a cheap snapshot for metrics.
type Stats struct {
	Jobs              map[State]int // jobs by state (done jobs until pruned)
	Undelivered       int           // results not yet acknowledged
	Held              int           // results held back from the outbox (Change.Hold)
	OldestUndelivered time.Duration // age of the oldest undelivered result; 0 if none
	FileSize          int64         // bytes
	LastAuditSeq      uint64
	LastOutboxSeq     uint64
	Commits           uint64 // durable write transactions since Open
	// ReplayGuards counts the replay guards of pruned jobs (see Prune).
	ReplayGuards int
	// Full is Store.Full: writes are refused for lack of room. FullCause
	// says why ("size cap reached (…)" or "filesystem full: …") and
	// FullSince since when; both are zero when Full is false.
	Full      bool
	FullCause string
	FullSince time.Time
}

// Stats returns counts kept in memory plus one short read transaction for
// the oldest undelivered result and the file size.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Jobs: make(map[State]int, 4), Undelivered: int(s.undelivered.Load()), Held: int(s.held.Load()), Commits: s.commits.Load(),
		ReplayGuards: int(s.guards.Load())}
	for state := Received; state <= Done; state++ {
		st.Jobs[state] = int(s.counts[state].Load())
	}
	st.Full, st.FullCause, st.FullSince = s.fullState()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		st.FileSize = tx.Size()
		meta := tx.Bucket(bucketMeta)
		var err error
		if st.LastAuditSeq, err = getUint(meta, keyAuditSeq); err != nil {
			return err
		}
		if st.LastOutboxSeq, err = getUint(meta, keyOutboxSeq); err != nil {
			return err
		}
		k, _ := tx.Bucket(bucketPending).Cursor().First()
		if k == nil {
			return nil
		}
		r, err := getResult(tx, k)
		if err != nil {
			return err
		}
		st.OldestUndelivered = s.opts.Now().Sub(r.CreatedAt)
		return nil
	})
	return st, err
}

// prepare creates, migrates and recovers the file. It writes only when
// there is something to do: even an empty bbolt commit allocates a page,
// and a store at its size cap must still open. When the file has the
// current layout but no room for the recovery of jobs left in signing, it
// returns those jobs, to be owed their move instead (see owedMove).
func (s *Store) prepare() ([]putBack, error) {
	clean, current := false, false
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v, err := checkLayout(tx); err != nil || v != schemaVersion {
			return nil // to create or migrate, or to fail in prepare
		}
		current = true
		k, _ := tx.Bucket(bucketByState).Cursor().Seek([]byte{byte(Signing)})
		clean = k == nil || k[0] != byte(Signing)
		return nil
	}); err != nil || clean {
		return nil, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := prepare(tx); err != nil {
			return err
		}
		return s.recoverSigning(tx)
	})
	cause := roomCause(err, s.opts.MaxSize, s.opts.MaxSize)
	if err == nil || !current || cause == "" {
		return nil, err
	}
	s.refused(false, cause)
	var backs []putBack
	err = s.db.View(func(tx *bolt.Tx) error {
		now := s.opts.Now().UTC()
		c := tx.Bucket(bucketByState).Cursor()
		for k, _ := c.Seek([]byte{byte(Signing)}); k != nil && k[0] == byte(Signing); k, _ = c.Next() {
			j, err := loadJob(tx, k[1:], false)
			if err != nil {
				return fmt.Errorf("recover job %s: %w", k[1:], err)
			}
			backs = append(backs, putBack{id: j.ID, expires: j.ExpiresAt,
				move: owedMove{event: EventRecovered, reason: reasonRecovered, at: now}})
			s.log.Warn("job was signing at shutdown; shown as ready, its recovery written once there is room", "job", j.ID)
		}
		return nil
	})
	return backs, err
}

// loadCounts seeds the in-memory counters from the indexes.
func (s *Store) loadCounts() error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketByState).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if st := State(k[0]); st.valid() {
				s.counts[st].Add(1)
			}
		}
		n := tx.Bucket(bucketPending).Stats().KeyN
		s.undelivered.Store(int64(n))
		if b := tx.Bucket(bucketGuards); b != nil { // nil: schema 1, read-only
			s.guards.Store(int64(b.Stats().KeyN))
		}
		if b := tx.Bucket(bucketHeld); b != nil { // nil: before schema 4, read-only
			s.held.Store(int64(b.Stats().KeyN))
		}
		return nil
	})
}

// view runs fn in a read transaction after checking ctx.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func mapBoltErr(err error) error {
	if err != nil && !errors.Is(err, ErrFull) && roomCause(err, 0, 0) != "" {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}
