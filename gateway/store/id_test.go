package store

import (
	"testing"

	"github.com/tekenid/teken/api"
)

func TestNewLetterIDIsAnOrderedJobID(t *testing.T) {
	prev := ""
	for range 10000 {
		id := NewLetterID()
		if err := api.ValidJobID(id); err != nil {
			t.Fatal(err)
		}
		if id[14] != '7' {
			t.Fatalf("%s is not a version 7 UUID", id)
		}
		if id <= prev {
			t.Fatalf("%s after %s: not in order", id, prev)
		}
		prev = id
	}
}
