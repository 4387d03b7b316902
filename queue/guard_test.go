package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// finishAndAck moves a new job to done with outcome and acknowledges its result.
func finishAndAck(t testing.TB, s *Store, id string, outcome Outcome) {
	t.Helper()
	if outcome == Signed {
		mustMove(t, s, id, Change{To: Ready})
		mustMove(t, s, id, Change{To: Signing})
	}
	mustMove(t, s, id, Change{To: Done, Outcome: outcome, Payload: []byte("result")})
	if first, err := s.AckResult(context.Background(), id); err != nil || !first {
		t.Fatalf("ack %s: first=%v err=%v", id, first, err)
	}
}

// readGuards decodes every replay guard and checks the bucket against its
// index: every key is its record's id, every guard with an Until has the
// one index entry for it, there is no other index entry, and none is
// still a job.
func readGuards(t testing.TB, tx *bolt.Tx) map[string]guard {
	t.Helper()
	out := map[string]guard{}
	jobs := tx.Bucket(bucketJobs)
	_ = tx.Bucket(bucketGuards).ForEach(func(k, v []byte) error {
		g, err := decodeGuard(v)
		switch {
		case err != nil:
			t.Errorf("guard %q: %v", k, err)
		case g.ID != string(k):
			t.Errorf("guard under key %q says id %q", k, g.ID)
		case jobs.Get(k) != nil:
			t.Errorf("id %q is both a job and a replay guard", k)
		}
		out[string(k)] = g
		return nil
	})
	indexed := 0
	_ = tx.Bucket(bucketByGuardUntil).ForEach(func(k, _ []byte) error {
		indexed++
		if len(k) < 8 {
			t.Errorf("guard index key %x too short", k)
			return nil
		}
		g, ok := out[string(k[8:])]
		if !ok || g.Until.IsZero() || uint64(g.Until.UnixNano()) != binary.BigEndian.Uint64(k[:8]) {
			t.Errorf("guard index entry %x does not match guard %+v", k, g)
		}
		return nil
	})
	withUntil := 0
	for _, g := range out {
		if !g.Until.IsZero() {
			withUntil++
		}
	}
	if indexed != withUntil {
		t.Errorf("%d guard index entries for %d guards with an Until", indexed, withUntil)
	}
	return out
}

func guardsOf(t testing.TB, s *Store) map[string]guard {
	t.Helper()
	var out map[string]guard
	if err := s.db.View(func(tx *bolt.Tx) error { out = readGuards(t, tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplayAfterPrune is the defect: a job done, acknowledged and pruned
// after the retention period (24h here) is offered again by the same (or
// another) envelope later. Within its window (ExpiresAt + ReplaySkew) it
// is refused with *ReplayError and nothing is stored; after it, the id is
// a new job again.
func TestReplayAfterPrune(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		expires   time.Duration // after insert; 0: never expires
		skew      time.Duration // Options.ReplaySkew; 0: the default
		outcome   Outcome
		other     bool          // the replay carries a different envelope
		replayAt  time.Duration // after insert; Prune runs then, then the replay
		wantKept  bool          // the first prune (at 25h) keeps a guard
		wantGuard bool          // the guard is still there at replayAt
	}{
		{name: "signed, replayed a day after pruning", expires: 60 * day, outcome: Signed,
			replayAt: 26 * time.Hour, wantKept: true, wantGuard: true},
		{name: "signed, replayed on the last day of a 90-day window", expires: 90 * day, outcome: Signed,
			replayAt: 90*day + time.Minute, wantKept: true, wantGuard: true},
		{name: "replayed at exactly ExpiresAt+skew: still refused", expires: 60 * day, outcome: Signed,
			replayAt: 60*day + DefaultReplaySkew, wantKept: true, wantGuard: true},
		{name: "same id, another envelope: the id is spent", expires: 60 * day, outcome: Signed, other: true,
			replayAt: 30 * day, wantKept: true, wantGuard: true},
		{name: "rejected job is guarded too", expires: 60 * day, outcome: Rejected,
			replayAt: 40 * day, wantKept: true, wantGuard: true},
		{name: "never expires: guarded forever", outcome: Signed,
			replayAt: 10 * 365 * day, wantKept: true, wantGuard: true},
		{name: "a longer ReplaySkew keeps the guard longer", expires: 30 * day, skew: time.Hour, outcome: Signed,
			replayAt: 30*day + 59*time.Minute, wantKept: true, wantGuard: true},
		{name: "replayed after ExpiresAt+skew: guard gone, stored as new", expires: 60 * day, outcome: Signed,
			replayAt: 60*day + DefaultReplaySkew + time.Nanosecond, wantKept: true},
		{name: "window over before pruning: no guard kept", expires: 2 * time.Hour, outcome: Signed,
			replayAt: 26 * time.Hour},
		{name: "window ends with the skew just before pruning: no guard", expires: 25*time.Hour - DefaultReplaySkew - time.Nanosecond,
			outcome: Rejected, replayAt: 25 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			opts := testOptions(c)
			opts.ReplaySkew = tt.skew
			s := openTest(t, filepath.Join(t.TempDir(), "q.db"), opts)
			ctx := context.Background()
			start := c.Now()
			j := testJob("01JREPLAY", c)
			j.ExpiresAt = time.Time{}
			if tt.expires != 0 {
				j.ExpiresAt = start.Add(tt.expires)
			}
			mustInsert(t, s, j)
			finishAndAck(t, s, j.ID, tt.outcome)

			c.Advance(25 * time.Hour)
			p, err := s.Prune(ctx)
			if err != nil || p.Jobs != 1 || p.Results != 1 || (p.GuardsKept == 1) != tt.wantKept {
				t.Fatalf("prune at 25h: %+v %v, want a guard kept: %v", p, err, tt.wantKept)
			}
			c.Advance(tt.replayAt - 25*time.Hour)
			p, err = s.Prune(ctx)
			if err != nil || (p.GuardsPruned == 1) != (tt.wantKept && !tt.wantGuard) {
				t.Fatalf("prune at replay time: %+v %v", p, err)
			}
			st, _ := s.Stats(ctx)
			if guards := guardsOf(t, s); len(guards) != st.ReplayGuards || (st.ReplayGuards == 1) != tt.wantGuard {
				t.Fatalf("guards %+v, Stats.ReplayGuards %d, want a guard: %v", guards, st.ReplayGuards, tt.wantGuard)
			}
			audit, err := s.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}

			replay := j
			if tt.other {
				replay.Envelope = []byte("eyJhbGciOiJFZERTQSJ9.another")
			}
			got, created, err := s.Insert(ctx, replay)
			if !tt.wantGuard {
				if err != nil || !created || got.State != Received {
					t.Fatalf("insert after the window: %+v created=%v %v, want a new job", got, created, err)
				}
				if n, _ := s.VerifyAudit(ctx); n != audit+1 {
					t.Fatalf("audit has %d entries, want %d", n, audit+1)
				}
				return
			}
			if !errors.Is(err, ErrReplayed) || created {
				t.Fatalf("replay: created=%v err=%v, want ErrReplayed", created, err)
			}
			var re *ReplayError
			if !errors.As(err, &re) {
				t.Fatalf("replay: %T %v, want *ReplayError", err, err)
			}
			wantUntil := time.Time{}
			if tt.expires != 0 {
				skew := tt.skew
				if skew == 0 {
					skew = DefaultReplaySkew
				}
				wantUntil = j.ExpiresAt.Add(skew)
			}
			if re.ID != j.ID || re.EnvelopeSHA256 != Digest(sha256.Sum256(j.Envelope)) ||
				!re.Until.Equal(wantUntil) || re.SameEnvelope == tt.other {
				t.Fatalf("ReplayError %+v, want id %s, hash of the first envelope, until %s, same envelope %v",
					re, j.ID, wantUntil, !tt.other)
			}
			t.Logf("%v", err)
			// Nothing stored, shown or audited as a new job.
			if _, err := s.Get(ctx, j.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after refused replay: %v", err)
			}
			if waiting, _ := s.BySigner(ctx, j.Signer, 0); len(waiting) != 0 {
				t.Fatalf("refused replay is waiting for its signer: %s", ids(waiting))
			}
			if n, err := s.VerifyAudit(ctx); err != nil || n != audit {
				t.Fatalf("audit after refused replay: %d entries (%v), want %d", n, err, audit)
			}
			st, _ = s.Stats(ctx)
			for state, n := range st.Jobs {
				if n != 0 {
					t.Fatalf("stats after refused replay: %d jobs %s", n, state)
				}
			}
			if st.ReplayGuards != 1 || st.Undelivered != 0 {
				t.Fatalf("stats after refused replay %+v", st)
			}
		})
	}
}

// TestReplayGuardDoneNotPruned: before pruning a replay is the ordinary
// duplicate (the stored job is returned), and a guard is kept only once.
func TestReplayGuardDoneNotPruned(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	j := testJob("a", c)
	j.ExpiresAt = c.Now().Add(60 * 24 * time.Hour)
	mustInsert(t, s, j)
	finishAndAck(t, s, j.ID, Signed)
	if got, created, err := s.Insert(ctx, j); err != nil || created || got.State != Done {
		t.Fatalf("duplicate of a done job: %+v created=%v %v", got, created, err)
	}
	c.Advance(25 * time.Hour)
	for i, want := range []PruneStats{{Jobs: 1, Results: 1, GuardsKept: 1}, {}} {
		if p, err := s.Prune(ctx); err != nil || p != want {
			t.Fatalf("prune %d: %+v %v, want %+v", i, p, err, want)
		}
	}
	if st, _ := s.Stats(ctx); st.ReplayGuards != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReplayGuardReopen: a guard is durable, and Stats counts it again
// after reopening (read-write and read-only).
func TestReplayGuardReopen(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	for i, exp := range []time.Duration{60 * 24 * time.Hour, 0, time.Hour} {
		j := testJob(fmt.Sprintf("j%d", i), c)
		j.ExpiresAt = time.Time{}
		if exp != 0 {
			j.ExpiresAt = c.Now().Add(exp)
		}
		mustInsert(t, s, j)
		finishAndAck(t, s, j.ID, Rejected)
	}
	c.Advance(25 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Jobs != 3 || p.GuardsKept != 2 {
		t.Fatalf("prune %+v %v", p, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	ro, err := OpenReadOnly(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ro.Stats(ctx); err != nil || st.ReplayGuards != 2 {
		t.Fatalf("read-only stats %+v %v", st, err)
	}
	if err := ro.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, testOptions(c))
	if st, _ := s.Stats(ctx); st.ReplayGuards != 2 {
		t.Fatalf("stats after reopen %+v", st)
	}
	for id, want := range map[string]bool{"j0": true, "j1": true, "j2": false} {
		_, created, err := s.Insert(ctx, testJob(id, c))
		if refused := errors.Is(err, ErrReplayed); refused != want || (err != nil && !refused) || created == want {
			t.Errorf("insert %s after reopen: created=%v %v, want refused: %v", id, created, err, want)
		}
	}
	if got := guardsOf(t, s); len(got) != 2 || !got["j1"].Until.IsZero() {
		t.Fatalf("guards after reopen %+v", got)
	}
}

// TestReplayGuardPruneBatches: guards are pruned at most sweepBatch per
// transaction, all in one Prune, those still needed are left alone, and
// the counter follows.
func TestReplayGuardPruneBatches(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	now := c.Now()
	past := 2*sweepBatch + 10
	err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		for i := range past + 20 {
			g := guard{ID: fmt.Sprintf("g%05d", i), EnvelopeSHA256: Digest{byte(i)}}
			switch {
			case i < past:
				g.Until = now.Add(-time.Duration(i+1) * time.Second)
			case i < past+10:
				g.Until = now // kept: Until is not before now
			default: // forever
			}
			if err := putGuard(tx, d, &g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); st.ReplayGuards != past+20 {
		t.Fatalf("stats %+v, want %d guards", st, past+20)
	}
	before := s.commits.Load()
	p, err := s.Prune(ctx)
	if err != nil || p.GuardsPruned != past {
		t.Fatalf("prune %+v %v, want %d guards pruned", p, err, past)
	}
	if txs := s.commits.Load() - before; txs < 3 {
		t.Fatalf("%d guards pruned in %d transactions, want batches of %d", past, txs, sweepBatch)
	}
	guards := guardsOf(t, s)
	if st, _ := s.Stats(ctx); len(guards) != 20 || st.ReplayGuards != 20 {
		t.Fatalf("%d guards left, stats %d, want 20", len(guards), st.ReplayGuards)
	}
	c.Advance(time.Nanosecond)
	if p, err := s.Prune(ctx); err != nil || p.GuardsPruned != 10 {
		t.Fatalf("prune a nanosecond later %+v %v", p, err)
	}
	c.Advance(100 * 365 * 24 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.GuardsPruned != 0 {
		t.Fatalf("forever guards pruned: %+v %v", p, err)
	}
}

// TestPutGuardTwice: a second guard for an id keeps the later Until and
// one index entry, and is counted once.
func TestPutGuardTwice(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	t0 := c.Now()
	for _, tt := range []struct {
		untils []time.Time
		want   time.Time
	}{
		{[]time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)}, t0.Add(2 * time.Hour)},
		{[]time.Time{t0.Add(2 * time.Hour), t0.Add(time.Hour)}, t0.Add(2 * time.Hour)},
		{[]time.Time{{}, t0.Add(time.Hour)}, time.Time{}},
		{[]time.Time{t0.Add(time.Hour), {}}, time.Time{}},
	} {
		for _, u := range tt.untils {
			if err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
				return putGuard(tx, d, &guard{ID: "x", Until: u})
			}); err != nil {
				t.Fatal(err)
			}
		}
		g := guardsOf(t, s)
		if st, _ := s.Stats(ctx); len(g) != 1 || !g["x"].Until.Equal(tt.want) || st.ReplayGuards != 1 {
			t.Fatalf("after %v: %+v (stats %d), want until %v", tt.untils, g, st.ReplayGuards, tt.want)
		}
		if err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
			g := g["x"]
			if !g.Until.IsZero() {
				if err := tx.Bucket(bucketByGuardUntil).Delete(guardUntilKey(&g)); err != nil {
					return err
				}
			}
			d.guards--
			return tx.Bucket(bucketGuards).Delete([]byte("x"))
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// oldBuckets are the layouts of schemas 1 and 2, frozen as those builds
// wrote them.
var oldBuckets = map[uint64][]string{
	1: {"meta", "jobs", "idx_state", "idx_signer", "idx_expiry", "outbox", "pending", "delivered", "audit"},
	2: {"meta", "jobs", "idx_state", "idx_signer", "idx_expiry", "outbox", "pending", "delivered", "audit",
		"replay", "idx_replay_until"},
}

// encodeJobInline is a job record as schemas 1 and 2 wrote it, with the
// envelope inside.
func encodeJobInline(j *Job) []byte {
	e := encoder{}
	e.byte(jobVersionInline)
	e.string(j.ID)
	e.string(j.Terminal)
	e.string(j.Signer)
	e.bytes(j.Meta)
	e.bytes(j.Envelope)
	e.digests(j.Digests)
	e.time(j.ReceivedAt)
	e.time(j.ExpiresAt)
	e.time(j.UpdatedAt)
	e.byte(uint8(j.State))
	e.byte(uint8(j.Outcome))
	e.string(j.Reason)
	e.uint(j.ResultSeq)
	return e.b
}

// encodeResultInline is an outbox record as schemas 1 and 2 wrote it, with
// the payload inside.
func encodeResultInline(r *Result) []byte {
	e := encoder{}
	e.byte(resultVersionInline)
	e.uint(r.Seq)
	e.string(r.JobID)
	e.byte(uint8(r.Outcome))
	e.string(r.Reason)
	e.bytes(r.Payload)
	e.time(r.CreatedAt)
	e.time(r.DeliveredAt)
	return e.b
}

// makeOldFile writes a file of schema v (1 or 2) with jobs in it: the
// current code writes the records, then the file is taken back to the
// layout of schema v, job records inline as that schema had them, and
// checked to be exactly it. It returns the envelope of the waiting job.
func makeOldFile(t *testing.T, path string, c *clock, v uint64) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	long := testJob("old-done", c)
	long.ExpiresAt = c.Now().Add(60 * 24 * time.Hour)
	mustInsert(t, s, long)
	finishAndAck(t, s, long.ID, Signed)
	waiting := testJob("old-waiting", c)
	mustInsert(t, s, waiting)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		for _, id := range []string{"old-done", "old-waiting"} {
			j, err := getJob(tx, []byte(id))
			if err != nil {
				return err
			}
			if err := jobs.Put([]byte(id), encodeJobInline(&j)); err != nil {
				return err
			}
		}
		outbox := tx.Bucket(bucketOutbox)
		keys, err := recordKeys(outbox)
		if err != nil {
			return err
		}
		for _, k := range keys {
			r, err := getResult(tx, k)
			if err != nil {
				return err
			}
			if err := outbox.Put(k, encodeResultInline(&r)); err != nil {
				return err
			}
		}
		keep := map[string]bool{}
		for _, name := range oldBuckets[v] {
			keep[name] = true
		}
		var drop [][]byte
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !keep[string(name)] {
				drop = append(drop, append([]byte(nil), name...))
			}
			return nil
		})
		for _, name := range drop {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if err := putUint(tx.Bucket(bucketMeta), keySchema, v); err != nil {
			return err
		}
		var have []string
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error { have = append(have, string(name)); return nil })
		if len(have) != len(oldBuckets[v]) {
			t.Fatalf("schema %d file has buckets %q, want %q", v, have, oldBuckets[v])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return waiting.Envelope
}

// TestMigrateSchema1 opens a file written with the schema 1 layout: read-only
// it is read as it is; Open migrates it to the current schema, keeps every
// record and envelope, and from then on a pruned job leaves a guard.
func TestMigrateSchema1(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	envelope := makeOldFile(t, path, c, 1)

	ro, err := OpenReadOnly(path, testOptions(c))
	if err != nil {
		t.Fatalf("read-only open of schema 1: %v", err)
	}
	if n, err := ro.VerifyAudit(ctx); err != nil || n != 5 {
		t.Fatalf("verify schema 1 read-only: n=%d %v", n, err)
	}
	if st, err := ro.Stats(ctx); err != nil || st.ReplayGuards != 0 || st.Jobs[Done] != 1 || st.Jobs[Received] != 1 {
		t.Fatalf("read-only stats of schema 1: %+v %v", st, err)
	}
	if j, err := ro.Get(ctx, "old-waiting"); err != nil || !bytes.Equal(j.Envelope, envelope) {
		t.Fatalf("read-only schema 1: envelope of old-waiting %q %v", j.Envelope, err)
	}
	if err := ro.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatalf("open schema 1: %v", err)
	}
	checkMigrated(t, s, envelope)
	err = s.db.View(func(tx *bolt.Tx) error {
		if v, err := getUint(tx.Bucket(bucketMeta), keySchema); err != nil || v != schemaVersion {
			t.Errorf("schema after migration %d %v, want %d", v, err, schemaVersion)
		}
		_, err := checkLayout(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 5 {
		t.Fatalf("verify after migration: n=%d %v", n, err)
	}
	if j, err := s.Get(ctx, "old-done"); err != nil || j.State != Done {
		t.Fatalf("old done job after migration: %+v %v", j, err)
	}
	c.Advance(25 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Jobs != 1 || p.GuardsKept != 1 {
		t.Fatalf("prune after migration %+v %v", p, err)
	}
	if _, _, err := s.Insert(ctx, testJob("old-done", c)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay after migration: %v, want ErrReplayed", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, testOptions(c)) // current schema now: no migration
	if st, _ := s.Stats(ctx); st.ReplayGuards != 1 {
		t.Fatalf("stats after second open %+v", st)
	}
	// old-waiting's expiry passed with the clock: the sweep at Open ends it.
	waitFor(t, 10*time.Second, func() bool {
		j, err := s.Get(ctx, "old-waiting")
		return err == nil && j.State == Done && j.Outcome == Expired
	})
	if st, _ := s.Stats(ctx); st.ReplayGuards != 1 || st.Jobs[Received] != 0 || st.Jobs[Done] != 1 {
		t.Fatalf("stats after the sweep at open %+v", st)
	}
}

// TestSchemaBroken: a file that says schema 2 but lacks a bucket of it is
// refused rather than opened half.
func TestSchemaBroken(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketGuards) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, testOptions(c)); !errors.Is(err, ErrSchema) {
		t.Fatalf("open without %s: %v, want ErrSchema", bucketGuards, err)
	}
	if _, err := OpenReadOnly(path, testOptions(c)); !errors.Is(err, ErrSchema) {
		t.Fatalf("read-only open without %s: %v, want ErrSchema", bucketGuards, err)
	}
}

func TestDecodeGuardErrors(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	good := encodeGuard(&guard{ID: "01HZX", EnvelopeSHA256: Digest{7}, Until: t0})
	tests := map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{2}, good[1:]...),
		"truncated":       good[:len(good)-1],
		"short digest":    good[:1+1+5+31],
		"trailing":        append(append([]byte(nil), good...), 0),
		"empty id":        encodeGuard(&guard{Until: t0}),
		"before 1970":     encodeGuard(&guard{ID: "a", Until: time.Unix(-1, 0)}),
		"huge length":     {guardVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeGuard(b); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
	g, err := decodeGuard(good)
	if err != nil || g.ID != "01HZX" || !g.Until.Equal(t0) || g.EnvelopeSHA256 != (Digest{7}) {
		t.Fatalf("good record: %+v %v", g, err)
	}
	// The example in the package documentation.
	forever := encodeGuard(&guard{ID: "a", EnvelopeSHA256: Digest{0xee}})
	if want := append(append([]byte{1, 1, 'a'}, (&Digest{0xee})[:]...), 0); !bytes.Equal(forever, want) || len(forever) != 36 {
		t.Fatalf("guard of a kept forever: % x", forever)
	}
}

// checkMigrated: every job record of s is of the current version, and the
// waiting job keeps its envelope and the SHA-256 of it.
func checkMigrated(t *testing.T, s *Store, envelope []byte) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if v[0] != resultVersion {
				t.Errorf("result %x: record version %d after migration", k, v[0])
			}
			return nil
		})
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if v[0] != jobVersion {
				t.Errorf("job %s: record version %d after migration", k, v[0])
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Get(context.Background(), "old-waiting")
	if err != nil || !bytes.Equal(j.Envelope, envelope) || j.EnvelopeSHA256 != sha256.Sum256(envelope) {
		t.Fatalf("old-waiting after migration: %+v %v", j, err)
	}
	done, err := s.Head(context.Background(), "old-done")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Result(context.Background(), done.ResultSeq); err != nil || string(r.Payload) != "result" || r.DeliveredAt.IsZero() {
		t.Fatalf("result of old-done after migration: %+v %v", r, err)
	}
}

// TestMigrateSchema2 moves the envelopes of a schema 2 file out of its
// job records; the replay guards it had stay.
func TestMigrateSchema2(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	envelope := makeOldFile(t, path, c, 2)
	ro, err := OpenReadOnly(path, testOptions(c))
	if err != nil {
		t.Fatalf("read-only open of schema 2: %v", err)
	}
	if j, err := ro.Get(ctx, "old-waiting"); err != nil || !bytes.Equal(j.Envelope, envelope) {
		t.Fatalf("read-only schema 2: envelope of old-waiting %q %v", j.Envelope, err)
	}
	if err := ro.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path, testOptions(c))
	checkMigrated(t, s, envelope)
	if n, err := s.VerifyAudit(ctx); err != nil || n != 5 {
		t.Fatalf("verify after migration: n=%d %v", n, err)
	}
	c.Advance(25 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Jobs != 1 || p.GuardsKept != 1 {
		t.Fatalf("prune after migration %+v %v", p, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketEnvelopes).Bucket([]byte("old-done")) != nil {
			t.Error("pruned job's envelope kept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCorruptGuard: a guard record that does not decode keeps its id
// refused and does not stop pruning.
func TestCorruptGuard(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	bad := guard{ID: "bad", Until: c.Now().Add(-time.Hour)}
	if err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		if err := putGuard(tx, d, &bad); err != nil {
			return err
		}
		return tx.Bucket(bucketGuards).Put([]byte("bad"), []byte{guardVersion, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	j := testJob("old", c)
	mustInsert(t, s, j)
	finishAndAck(t, s, j.ID, Rejected)
	c.Advance(25 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Jobs != 1 || p.GuardsPruned != 0 {
		t.Fatalf("prune past a corrupt guard: %+v %v", p, err)
	}
	var indexed int
	_ = s.db.View(func(tx *bolt.Tx) error {
		indexed = tx.Bucket(bucketByGuardUntil).Stats().KeyN
		return nil
	})
	if indexed != 0 {
		t.Fatalf("%d guard index entries left", indexed)
	}
	var de *DecodeError
	if _, created, err := s.Insert(ctx, testJob("bad", c)); !errors.As(err, &de) || created {
		t.Fatalf("insert of an id with a corrupt guard: created=%v %v, want a DecodeError", created, err)
	}
	if st, _ := s.Stats(ctx); st.ReplayGuards != 1 {
		t.Fatalf("stats %+v", st)
	}
}
