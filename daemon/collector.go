package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// stateCollector reads the terminal's live state at scrape time, so a
// metric can never say "fine" about a part that broke since it last changed.
type stateCollector struct {
	d *Daemon

	jobsWaiting, oldestWaiting, undelivered, oldestUndelivered *prometheus.Desc
	held                                                       *prometheus.Desc
	tokenPresent, pinRetries, certNotAfter, certSoonest        *prometheus.Desc
	pcscdUp, brokerConnected, storeSize, storeMaxSize          *prometheus.Desc
	scrapeErrors, intakeRetrying                               *prometheus.Desc
}

func newStateCollector(d *Daemon) *stateCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("teken_"+name, help, nil, nil)
	}
	return &stateCollector{
		d:                 d,
		jobsWaiting:       desc("jobs_waiting", "Jobs stored and not yet done."),
		oldestWaiting:     desc("jobs_oldest_waiting_age_seconds", "Age of the oldest job not yet done; 0 when none waits."),
		undelivered:       desc("results_undelivered", "Results the central side has not acknowledged."),
		oldestUndelivered: desc("results_oldest_undelivered_age_seconds", "Age of the oldest unacknowledged result; 0 when none."),
		held:              desc("results_held", "Signed letters kept from the central side until they reach signing.level (signing.require_level)."),
		tokenPresent:      desc("token_present", "1 while a token is on a reader."),
		pinRetries:        desc("token_pin_retries", "PIN retries left on the present token; -1 when none is present or it does not say."),
		certNotAfter:      desc("signer_certificate_not_after_timestamp_seconds", "Expiry of the present signer's certificate, Unix time; 0 when none."),
		certSoonest:       desc("signer_certificate_soonest_not_after_timestamp_seconds", "Soonest expiry among signer certificates seen in the last 30 days, Unix time; 0 when none."),
		pcscdUp:           desc("pcscd_up", "1 when the smart-card service answers."),
		brokerConnected:   desc("broker_connected", "1 while connected to the MQTT broker."),
		storeSize:         desc("store_size_bytes", "Size of the job store file."),
		storeMaxSize:      desc("store_max_size_bytes", "Configured cap of the job store file."),
		scrapeErrors:      desc("scrape_store_errors", "1 when the store did not answer this scrape."),
		intakeRetrying:    desc("intake_retrying", "1 while the terminal retries a message it could not store; later messages wait behind it."),
	}
}

// Describe sends every descriptor.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobsWaiting, c.oldestWaiting, c.undelivered, c.oldestUndelivered, c.held,
		c.tokenPresent, c.pinRetries, c.certNotAfter, c.certSoonest, c.pcscdUp, c.brokerConnected,
		c.storeSize, c.storeMaxSize, c.scrapeErrors, c.intakeRetrying} {
		ch <- d
	}
}

// Collect reads the state now.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	d := c.d

	storeErr := 0.0
	if st, err := d.store.Stats(ctx); err == nil {
		gauge(c.jobsWaiting, float64(st.Jobs[queue.Received]+st.Jobs[queue.Ready]+st.Jobs[queue.Signing]))
		gauge(c.undelivered, float64(st.Undelivered))
		gauge(c.held, float64(st.Held))
		gauge(c.oldestUndelivered, st.OldestUndelivered.Seconds())
		gauge(c.storeSize, float64(st.FileSize))
	} else {
		storeErr = 1
	}
	if age, err := d.store.OldestWaiting(ctx); err == nil {
		gauge(c.oldestWaiting, age.Seconds())
	} else {
		storeErr = 1
	}
	gauge(c.scrapeErrors, storeErr)
	gauge(c.storeMaxSize, float64(d.cfg.Store.MaxSizeBytes))

	present, retries, notAfter := d.flow.tokenFacts()
	gauge(c.tokenPresent, boolFloat(present))
	gauge(c.pinRetries, float64(retries))
	gauge(c.certNotAfter, unixOrZero(notAfter))
	gauge(c.certSoonest, unixOrZero(d.seen.soonest(d.now())))

	_, err := d.tokens.Readers(ctx)
	gauge(c.pcscdUp, boolFloat(!errors.Is(err, device.ErrPCSCUnavailable)))
	t := d.term.Load()
	gauge(c.brokerConnected, boolFloat(t != nil && t.Connected()))
	gauge(c.intakeRetrying, boolFloat(d.intake.retrying.reason() != ""))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix())
}

// certWindow is how long a signer certificate seen at this terminal counts
// for teken_signer_certificate_soonest_not_after_timestamp_seconds.
const certWindow = 30 * 24 * time.Hour

// certsSeen remembers the expiry of each signer certificate seen lately, so
// IT learns of an official's certificate about to expire before that
// official comes to sign. It lives in memory: a restart forgets it until
// each official taps again.
type certsSeen struct {
	mu    sync.Mutex
	certs map[string]seenCert // by certificate SHA-256
}

type seenCert struct{ notAfter, seen time.Time }

func (s *certsSeen) add(hash string, notAfter, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certs == nil {
		s.certs = make(map[string]seenCert)
	}
	s.certs[hash] = seenCert{notAfter: notAfter, seen: now}
}

func (s *certsSeen) soonest(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var soonest time.Time
	for h, c := range s.certs {
		if now.Sub(c.seen) > certWindow {
			delete(s.certs, h)
			continue
		}
		if soonest.IsZero() || c.notAfter.Before(soonest) {
			soonest = c.notAfter
		}
	}
	return soonest
}
