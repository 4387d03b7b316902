package daemon

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tekenid/teken/transport"
)

// brokerAnswerTimeout is how long the broker has to answer a publish, a
// subscribe or a ping before tekend counts it as stalled: the transport's
// AnswerTimeout, and the outbox's deadline for each result. A broker that
// hangs keeps its sockets open, so the connection looks up and only the
// missing answers tell (see transport.ErrStalled). It is a variable for
// the tests alone (broker_export_test.go), which freeze a broker for less
// than the ten seconds a real one is given.
var brokerAnswerTimeout = statusTimeout

// BrokerConnection is how this terminal reaches its broker: the URLs, the
// client id, the user and the password of password_file, and the pinned TLS
// trust and client certificate, each file loaded as tekend run loads it
// (files.go). tekenctl doctor connects with it under a client id of its
// own, so that it never takes over tekend's session.
func BrokerConnection(cfg Config) (transport.Connection, error) {
	b := cfg.Broker
	password, tc, err := loadBrokerFiles(b)
	if err != nil {
		return transport.Connection{}, err
	}
	return transport.Connection{
		Brokers: b.URLs, ClientID: cfg.ClientID(), Username: b.Username, Password: password, TLS: tc,
		MaxReconnectInterval: time.Duration(b.MaxReconnectInterval),
	}, nil
}

// brokerStallChanged is the transport's OnStall. It records the stall as
// the last error, so the retained status carries it: while the broker is
// stalled that status may not get through, but the one published once it
// answers again says how long it was stalled. The broker's live state is
// read by brokerProblem (/readyz), brokerCollector (the metric) and the
// status's online/offline. It runs under the transport's lock: setLastError
// and outbox.answered only store and signal.
func (d *Daemon) brokerStallChanged(stalled bool, since time.Time) {
	at := since.UTC().Format(time.RFC3339)
	if stalled {
		d.setLastError("broker: stalled: no answer since " + at)
		return
	}
	d.setLastError(fmt.Sprintf("broker: was stalled for %v from %s; it answers again", time.Since(since).Round(time.Second), at))
	d.outbox.answered()
}

// brokerPartProblem is brokerProblem's verdict on the session t (nil before
// it is open): down is "not connected", up without answers is "stalled",
// and a connection lost to a stall says both.
func brokerPartProblem(t *transport.Terminal) *partProblem {
	if t == nil {
		return &partProblem{part: "broker", detail: "not connected"}
	}
	since, stalled := t.Stalled()
	stall := ""
	if stalled {
		stall = fmt.Sprintf("stalled: no answer for %v", time.Since(since).Round(time.Second))
	}
	switch {
	case !t.Connected() && stalled:
		return &partProblem{part: "broker", detail: "not connected (" + stall + ")"}
	case !t.Connected():
		return &partProblem{part: "broker", detail: "not connected"}
	case stalled:
		return &partProblem{part: "broker", detail: stall}
	}
	return nil
}

// brokerCollector exports the broker's stall at scrape time, beside
// teken_broker_connected (stateCollector): a stalled broker's connection
// is up.
type brokerCollector struct {
	d       *Daemon
	stalled *prometheus.Desc
}

func newBrokerCollector(d *Daemon) *brokerCollector {
	return &brokerCollector{d: d, stalled: prometheus.NewDesc("teken_broker_stalled",
		"1 while the MQTT broker does not answer (no PUBACK, SUBACK or PINGRESP within the answer timeout), connected or not.", nil, nil)}
}

// Describe sends the descriptor.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.stalled }

// Collect reads the stall now.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if t := c.d.term.Load(); t != nil {
		if _, stalled := t.Stalled(); stalled {
			v = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, v)
}
