package daemon

import (
	"crypto"
	"io"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tekenid/teken/internal/version"
)

// metrics are tekend's Prometheus metrics, namespace teken_, base units,
// and labels of low cardinality only: never a job id or a person.
type metrics struct {
	reg           *prometheus.Registry
	jobsReceived  *prometheus.CounterVec
	jobsCompleted *prometheus.CounterVec
	waitTime      prometheus.Histogram
	cardSign      prometheus.Histogram
	signBatch     prometheus.Histogram
	pinFailures   prometheus.Counter
	tokenBusy     prometheus.Counter
	reconnects    prometheus.Counter
	// intakeFailures counts messages the handler could not take, by
	// class: transient ones are retried, permanent ones acknowledged.
	intakeFailures *prometheus.CounterVec
	lastDelivery   prometheus.Gauge
	// The timestamp authorities, by authority (its URL's host: a handful
	// per fleet): how long each exchange took, which failed, and how far
	// the authority's clock is from the terminal's.
	tsaSeconds  *prometheus.HistogramVec
	tsaFailures *prometheus.CounterVec
	tsaSkew     *prometheus.GaugeVec
	// levels counts signed documents by the level they reached.
	levels *prometheus.CounterVec
}

func newMetrics() *metrics {
	const ns = "teken"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "jobs_received_total",
			Help: "Job envelopes received, by result (accepted, duplicate, refused) and refusal reason.",
		}, []string{"result", "reason"}),
		jobsCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "jobs_completed_total",
			Help: "Jobs completed, by outcome.",
		}, []string{"outcome"}),
		waitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "job_wait_seconds",
			Help:    "Time from a job's arrival to its signature.",
			Buckets: []float64{60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400},
		}),
		cardSign: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "card_sign_seconds",
			Help:    "Time to sign one document, most of it inside the token.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 10),
		}),
		signBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "sign_batch_seconds",
			Help:    "Time of one signing batch, PIN verification included.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}),
		pinFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "pin_failures_total",
			Help: "PIN entries the token refused.",
		}),
		tokenBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "token_busy_seconds_total",
			Help: "Time spent waiting on the token: PC/SC and the card itself.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "broker_connects_total",
			Help: "Connections made to the broker, the first included.",
		}),
		intakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "intake_failures_total",
			Help: "Messages from the broker the terminal could not take, by class: transient (retried) or permanent (acknowledged and recorded).",
		}, []string{"class"}),
		lastDelivery: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "last_result_delivery_timestamp_seconds",
			Help: "When the central side last acknowledged a result, Unix time.",
		}),
		tsaSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "tsa_request_seconds",
			Help:    "Time of one exchange with a timestamp authority, by authority host and result (ok, failed).",
			Buckets: prometheus.ExponentialBuckets(0.025, 2, 10),
		}, []string{"tsa", "result"}),
		tsaFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "tsa_failures_total",
			Help: "Exchanges with a timestamp authority that gave no usable token, by authority host.",
		}, []string{"tsa"}),
		tsaSkew: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "tsa_clock_skew_seconds",
			Help: "The last token's time minus the terminal's clock, by authority host: positive when the authority is ahead.",
		}, []string{"tsa"}),
		levels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "signatures_total",
			Help: "Documents signed, by format and the level reached (B-B, B-T, B-LT, B-LTA; raw has none).",
		}, []string{"format", "level"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info", Help: "Version of tekend; always 1.",
	}, []string{"version"})
	buildInfo.WithLabelValues(version.String()).Set(1)
	for _, class := range []string{"transient", "permanent"} {
		m.intakeFailures.WithLabelValues(class) // present at 0 from the start
	}
	m.reg.MustRegister(m.jobsReceived, m.jobsCompleted, m.waitTime, m.cardSign, m.signBatch,
		m.pinFailures, m.tokenBusy, m.reconnects, m.intakeFailures, m.lastDelivery, buildInfo,
		m.tsaSeconds, m.tsaFailures, m.tsaSkew, m.levels,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: ns}))
	return m
}

// ObserveTSA records one exchange with a timestamp authority
// (tsa.Observer).
func (m *metrics) ObserveTSA(rawURL string, latency, skew time.Duration, err error) {
	host := rawURL
	if u, perr := url.Parse(rawURL); perr == nil && u.Host != "" {
		host = u.Host
	}
	if err != nil {
		m.tsaSeconds.WithLabelValues(host, "failed").Observe(latency.Seconds())
		m.tsaFailures.WithLabelValues(host).Inc()
		return
	}
	m.tsaSeconds.WithLabelValues(host, "ok").Observe(latency.Seconds())
	m.tsaFailures.WithLabelValues(host) // present at 0 once the authority answered
	m.tsaSkew.WithLabelValues(host).Set(skew.Seconds())
}

// tokenTime adds the time since start to the token-busy counter.
func (m *metrics) tokenTime(start time.Time) { m.tokenBusy.Add(time.Since(start).Seconds()) }

// timedSigner counts the time a token spends on each signature, in the
// token-busy counter and in spent.
type timedSigner struct {
	crypto.Signer
	m     *metrics
	spent *time.Duration
}

func (s timedSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	defer func() {
		*s.spent += time.Since(start)
		s.m.tokenTime(start)
	}()
	return s.Signer.Sign(r, digest, opts)
}
