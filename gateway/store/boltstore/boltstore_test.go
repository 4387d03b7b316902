package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, hooks store.Hooks) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "gateway.db"), Options{Hooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
