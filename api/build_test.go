package api

import "testing"

func TestNewJobIDIsValidAndFresh(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewJobID()
		if err := ValidJobID(id); err != nil {
			t.Fatalf("NewJobID() = %q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("NewJobID repeated %q", id)
		}
		seen[id] = true
	}
}
