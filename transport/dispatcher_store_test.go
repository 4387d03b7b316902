package transport

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
)

func TestMemoryJobs(t *testing.T) {
	ctx := context.Background()
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		put    []PendingJob
		remove []string
		want   []string // job ids pending for terminal "a", in order
	}{
		{"empty", nil, nil, []string{}},
		{"order of publishing", []PendingJob{{Terminal: "a", JobID: "2", ExpiresAt: future}, {Terminal: "a", JobID: "1"}}, nil, []string{"2", "1"}},
		{"other terminal apart", []PendingJob{{Terminal: "b", JobID: "1"}, {Terminal: "a", JobID: "3"}}, nil, []string{"3"}},
		{"expired forgotten", []PendingJob{{Terminal: "a", JobID: "1", ExpiresAt: past}, {Terminal: "a", JobID: "2", ExpiresAt: future}}, nil, []string{"2"}},
		{"removed", []PendingJob{{Terminal: "a", JobID: "1"}, {Terminal: "a", JobID: "2"}}, []string{"1", "unknown"}, []string{"2"}},
		{"put again moves to the end", []PendingJob{{Terminal: "a", JobID: "1"}, {Terminal: "a", JobID: "2"}, {Terminal: "a", JobID: "1"}}, nil, []string{"2", "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemoryJobs()
			for _, p := range tc.put {
				if err := m.Put(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range tc.remove {
				if err := m.Remove(ctx, "a", id); err != nil {
					t.Fatal(err)
				}
			}
			got, err := m.Pending(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, p := range got {
				ids = append(ids, p.JobID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("pending %v, want %v", ids, tc.want)
			}
		})
	}
}

func TestMemoryResultsBounded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		limit   int
		add     []string
		seen    []string
		notSeen []string
	}{
		{"within limit", 3, []string{"1", "2", "3"}, []string{"1", "2", "3"}, []string{"4"}},
		{"oldest forgotten", 2, []string{"1", "2", "3"}, []string{"2", "3"}, []string{"1"}},
		{"added twice counts once", 2, []string{"1", "1", "2"}, []string{"1", "2"}, nil},
		{"limit at least one", 0, []string{"1", "2"}, []string{"2"}, []string{"1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemoryResults(tc.limit)
			for _, id := range tc.add {
				if err := m.Add(ctx, "a", id); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range tc.seen {
				if ok, _ := m.Seen(ctx, "a", id); !ok {
					t.Errorf("%s not seen", id)
				}
			}
			for _, id := range tc.notSeen {
				if ok, _ := m.Seen(ctx, "a", id); ok {
					t.Errorf("%s seen", id)
				}
			}
			if ok, _ := m.Seen(ctx, "b", tc.add[len(tc.add)-1]); ok {
				t.Error("seen for another terminal")
			}
		})
	}
}

func TestConfigRefused(t *testing.T) {
	h := newMemTerminal(&api.Verifier{})
	conn := Connection{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "x"}
	tests := []struct {
		name string
		cfg  TerminalConfig
	}{
		{"no broker", TerminalConfig{Connection: Connection{ClientID: "x"}, TerminalID: "t-1", Handler: h}},
		{"no client id", TerminalConfig{Connection: Connection{Brokers: conn.Brokers}, TerminalID: "t-1", Handler: h}},
		{"bad terminal id", TerminalConfig{Connection: conn, TerminalID: "T 1", Handler: h}},
		{"bad root", TerminalConfig{Connection: conn, Root: "a/#", TerminalID: "t-1", Handler: h}},
		{"no handler", TerminalConfig{Connection: conn, TerminalID: "t-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tt, err := OpenTerminal(tc.cfg); err == nil {
				closeCtx(t, tt.Close)
				t.Fatal("opened")
			}
		})
	}
	if _, err := OpenDispatcher(DispatcherConfig{Connection: conn}); err == nil {
		t.Fatal("dispatcher opened without a signer")
	}
}
