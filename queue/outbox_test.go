package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestOutboxDrainAndRetention(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	for i := range 5 {
		id := fmt.Sprintf("j%d", i)
		mustInsert(t, s, testJob(id, c))
		mustMove(t, s, id, Change{To: Done, Outcome: Failed, Reason: "refused", Payload: []byte(id)})
	}
	page, err := s.Undelivered(ctx, 0, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 1 || page[1].Seq != 2 {
		t.Fatalf("first page %+v %v", page, err)
	}
	page, _ = s.Undelivered(ctx, page[1].Seq, 2)
	if len(page) != 2 || page[0].Seq != 3 {
		t.Fatalf("second page %+v", page)
	}
	if err := s.MarkDelivered(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered(ctx, 2); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	if err := s.MarkDelivered(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack unknown seq: %v", err)
	}
	page, _ = s.Undelivered(ctx, 0, 10)
	if len(page) != 4 || page[0].Seq != 1 || page[1].Seq != 3 {
		t.Fatalf("after ack %+v", page)
	}
	c.Advance(time.Minute)
	st, _ := s.Stats(ctx)
	if st.Undelivered != 4 || st.OldestUndelivered != time.Minute || st.Jobs[Done] != 5 || st.FileSize == 0 {
		t.Fatalf("stats %+v", st)
	}
	// Delivered results are kept for the retention period, then pruned with their jobs.
	if p, err := s.Prune(ctx); err != nil || p.Results != 0 {
		t.Fatalf("early prune %+v %v", p, err)
	}
	c.Advance(25 * time.Hour)
	if p, err := s.Prune(ctx); err != nil || p.Results != 1 || p.Jobs != 1 {
		t.Fatalf("prune %+v %v", p, err)
	}
	if _, err := s.Get(ctx, "j1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned job: %v", err)
	}
	if _, err := s.Get(ctx, "j0"); err != nil {
		t.Fatalf("job with undelivered result must stay: %v", err)
	}
	if err := s.MarkDelivered(ctx, 2); err != nil {
		t.Fatalf("ack of pruned result: %v", err)
	}
	// Sequences are never reused after pruning.
	mustInsert(t, s, testJob("late", c))
	j := mustMove(t, s, "late", Change{To: Done, Outcome: Rejected})
	if j.ResultSeq != 6 {
		t.Fatalf("seq after prune %d, want 6", j.ResultSeq)
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 12 {
		t.Fatalf("audit kept through pruning: n=%d %v", n, err)
	}
	if st, _ := s.Stats(ctx); st.Jobs[Done] != 5 || st.Undelivered != 5 {
		t.Fatalf("stats after prune %+v", st)
	}
}

func TestAckResultByJobID(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	mustInsert(t, s, testJob("waiting", c))
	mustInsert(t, s, testJob("done", c))
	mustMove(t, s, "done", Change{To: Done, Outcome: Rejected, Payload: []byte("result")})

	if _, err := s.AckResult(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack of an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := s.AckResult(ctx, "waiting"); !errors.Is(err, ErrNoResult) {
		t.Errorf("ack of a waiting job: %v, want ErrNoResult", err)
	}
	first, err := s.AckResult(ctx, "done")
	if err != nil || !first {
		t.Fatalf("first ack: first=%v err=%v", first, err)
	}
	if first, err := s.AckResult(ctx, "done"); err != nil || first {
		t.Fatalf("second ack: first=%v err=%v, want a quiet repeat", first, err)
	}
	if st, _ := s.Stats(ctx); st.Undelivered != 0 {
		t.Errorf("undelivered after ack: %d", st.Undelivered)
	}
	if page, _ := s.Undelivered(ctx, 0, 10); len(page) != 0 {
		t.Errorf("outbox after ack: %+v", page)
	}
	// Pruned with its job after the retention period: the job is gone.
	c.Advance(25 * time.Hour)
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AckResult(ctx, "done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack after pruning: %v, want ErrNotFound", err)
	}
}
