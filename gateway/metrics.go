package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tekenid/teken/gateway/store"
)

type metrics struct {
	reg            *prometheus.Registry
	submitted      prometheus.Counter
	published      prometheus.Counter
	results        *prometheus.CounterVec
	unknownResults prometheus.Counter
	webhooks       *prometheus.CounterVec
	requests       *prometheus.HistogramVec
}

func newMetrics(g *Gateway) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "teken_gateway_letters_submitted_total",
			Help: "Letters letter systems submitted (not counting idempotent replays)."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "teken_gateway_letters_published_total",
			Help: "Letters published to their terminal's jobs topic."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "teken_gateway_results_total",
			Help: "Terminal results stored, by outcome."}, []string{"outcome"}),
		unknownResults: prometheus.NewCounter(prometheus.CounterOpts{Name: "teken_gateway_results_unknown_total",
			Help: "Results for letters this gateway does not hold, left unacknowledged."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "teken_gateway_webhook_attempts_total",
			Help: "Webhook delivery attempts, by result (delivered, failed)."}, []string{"result"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "teken_gateway_api_request_duration_seconds",
			Help: "API requests by route and status code.", Buckets: prometheus.DefBuckets}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.submitted, m.published, m.results, m.unknownResults, m.webhooks, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &stateCollector{g})
	for _, o := range []string{"signed", "rejected", "expired", "cancelled", "failed"} {
		m.results.WithLabelValues(o)
	}
	for _, r := range []string{"delivered", "failed"} {
		m.webhooks.WithLabelValues(r)
	}
	return m
}

// instrument times every request of one route.
func (g *Gateway) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		g.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

// stateCollector reads what the store holds at each scrape: letters by
// state, webhook deliveries waiting, the terminals' undelivered results.
type stateCollector struct{ g *Gateway }

var (
	lettersDesc = prometheus.NewDesc("teken_gateway_letters", "Letters in the store, by state.", []string{"state"}, nil)
	pendingDesc = prometheus.NewDesc("teken_gateway_terminal_results_pending",
		"Results the terminals hold that no central side acknowledged yet, from their statuses.", []string{"terminal"}, nil)
	brokerDesc = prometheus.NewDesc("teken_gateway_broker_connected", "1 when the gateway is connected to the broker.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lettersDesc
	ch <- pendingDesc
	ch <- brokerDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if counts, err := c.g.store.Counts(ctx); err == nil {
		for _, st := range []store.State{store.Queued, store.Sent, store.Stored, store.Refused, store.Signed,
			store.Rejected, store.Expired, store.Cancelled, store.Failed} {
			ch <- prometheus.MustNewConstMetric(lettersDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	for _, s := range c.g.fleet.all() {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.ResultsUndelivered), s.Terminal)
	}
	up := 0.0
	if c.g.disp != nil && c.g.disp.Connected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(brokerDesc, prometheus.GaugeValue, up)
}
