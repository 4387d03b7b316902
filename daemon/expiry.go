package daemon

import "github.com/tekenid/teken/queue"

// jobsExpired is the store's queue.Options.OnExpired: the store's sweeper
// calls it once the transaction that expired jobs is durable (at Open,
// when the soonest expiry passes, and every sweep period). The Results are
// in the outbox by then, so the outbox is told at once; the expiries are
// counted; and the page of a signer whose letter expired is published
// again, without it.
//
// It runs on the sweeper's goroutine, from Open on. The outbox, the metrics
// and the status kick exist before the store opens; the flow is built
// after it, and there is a page to refresh only once Run serves, so the
// flow is reached only when Run has begun: running is set in Run, after
// Open has built everything, which orders the flow before this read.
func (d *Daemon) jobsExpired(jobs []queue.Job) {
	if len(jobs) == 0 {
		return
	}
	d.metrics.jobsCompleted.WithLabelValues(queue.Expired.String()).Add(float64(len(jobs)))
	d.outbox.notify()
	d.statusChanged()
	if !d.running.Load() {
		return // no page yet; the first one lists what waits then
	}
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if j.Signer != "" && !seen[j.Signer] {
			seen[j.Signer] = true
			d.flow.jobsChanged(j.Signer)
		}
	}
}
