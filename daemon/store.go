package daemon

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/queue"
)

// The store has no room when it reaches its size cap (store.max_size_bytes)
// or the filesystem under the data directory is full: the store says so
// (queue.Store.Full), and every write it refuses fails with queue.ErrFull,
// which its callers already handle — intake does not acknowledge the job,
// so the broker keeps it until there is room; a signing that cannot be
// completed puts the job back, and the store shows it as waiting even when
// the put-back cannot be written either. What follows reports it like any
// other part: /readyz and the status (fullProblem), the kiosk
// (err_store_full), and teken_store_full (storeCollector).

// fullProblem is the store's part problem when it has no room, or nil.
func fullProblem(st queue.Stats) *partProblem {
	if !st.Full {
		return nil
	}
	return &partProblem{part: "store", detail: "full: " + st.FullCause, code: kiosk.CodeStoreFull}
}

// storeMessage is what the official reads when err comes from a store
// with no room (queue.ErrFull, the size cap or a full disk): err_store_full.
// ok is false for any other error. tokenMessage asks it first, so a batch
// that cannot be completed for lack of room says so (409) instead of
// err_internal (500).
func storeMessage(err error) (m kiosk.Message, ok bool) {
	if errors.Is(err, queue.ErrFull) {
		return kiosk.Message{Code: kiosk.CodeStoreFull}, true
	}
	return kiosk.Message{}, false
}

// roomReporter is the part of the store storeCollector reads.
type roomReporter interface{ Full() bool }

var _ roomReporter = (*queue.Store)(nil)

// storeCollector exports teken_store_full, read at scrape time without a
// transaction.
type storeCollector struct {
	store roomReporter
	full  *prometheus.Desc
}

func newStoreCollector(s roomReporter) *storeCollector {
	return &storeCollector{store: s, full: prometheus.NewDesc("teken_store_full",
		"1 while the job store refuses writes for lack of room: its size cap is reached or the filesystem is full. New jobs are not acknowledged meanwhile; they stay with the central system.",
		nil, nil)}
}

// Describe sends the descriptor.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.full }

// Collect reads the store's room now.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.full, prometheus.GaugeValue, boolFloat(c.store.Full()))
}
