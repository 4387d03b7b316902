package queue

import (
	"context"
	"path/filepath"
	"testing"
)

// AckResults marks each named result delivered once, in one transaction,
// and passes over ids without a result or unknown to the store; a held
// result (never sent) is not marked, as AckResult does not mark it.
func TestAckResultsMarksEachNamedResultOnce(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	mustInsert(t, s, testJob("waiting", c))
	for _, id := range []string{"a", "b", "c"} {
		mustInsert(t, s, testJob(id, c))
		mustMove(t, s, id, Change{To: Done, Outcome: Rejected, Payload: []byte("result " + id)})
	}
	marked, err := s.AckResults(ctx, []string{"a", "waiting", "nobody", "b"})
	if err != nil || marked != 2 {
		t.Fatalf("first batch: marked %d, %v; want 2", marked, err)
	}
	if marked, err := s.AckResults(ctx, []string{"a", "b"}); err != nil || marked != 0 {
		t.Fatalf("the same batch again: marked %d, %v; want 0", marked, err)
	}
	page, err := s.Undelivered(ctx, 0, 10)
	if err != nil || len(page) != 1 || page[0].JobID != "c" {
		t.Fatalf("outbox after the batches: %+v %v, want only c's result", page, err)
	}
	if st, _ := s.Stats(ctx); st.Undelivered != 1 {
		t.Errorf("undelivered count %d, want 1", st.Undelivered)
	}
	if marked, err := s.AckResults(ctx, []string{"c"}); err != nil || marked != 1 {
		t.Fatalf("last one: marked %d, %v; want 1", marked, err)
	}
	if st, _ := s.Stats(ctx); st.Undelivered != 0 {
		t.Errorf("undelivered count %d, want 0", st.Undelivered)
	}
}
