package soak

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// The measurements behind the settings docs/BROKERS.md recommends: each
// prints the figures its "Measured" tables report. They take several
// minutes and assert nothing but that every job arrives; TEKEN_MEASURE=1
// runs them:
//
//	TEKEN_MEASURE=1 go test -count=1 -v -timeout 60m -run TestMeasure ./internal/soak/

func measuring(t *testing.T) {
	t.Helper()
	if os.Getenv("TEKEN_MEASURE") == "" {
		t.Skip("set TEKEN_MEASURE=1 to run the broker measurements (several minutes)")
	}
}

// natsCase is one nats-server configuration and what is sent through it.
type natsCase struct {
	name  string
	mqtt  []string // inside mqtt { }
	extra []string // top level
	spec  drainSpec
}

// Kinds of drain the measurements send: the 40 × 5 MiB backlog; 20 jobs
// of about the largest envelope (a 10 MiB PDF, the default content limit:
// 17.8 MiB); 1000 small jobs queued while tekend was away, and published
// while it runs; 500 queued with tekend killed after the first 100.
var (
	bigBacklog     = drainSpec{jobs: backlogJobs, pdfSize: backlogPDF, giveUp: 5 * time.Minute}
	largestBacklog = drainSpec{jobs: 20, pdfSize: 10<<20 - 64<<10, giveUp: 5 * time.Minute}
	smallBacklog   = drainSpec{jobs: 1000, giveUp: 5 * time.Minute}
	burst          = drainSpec{jobs: 1000, online: true, giveUp: 5 * time.Minute}
	crash          = drainSpec{jobs: 500, killAt: 100, giveUp: 5 * time.Minute}
)

// TestMeasureNATS measures the trade-off of nats-server's mqtt
// max_ack_pending and ack_wait and its max_pending: duplicates delivered,
// drain time, disconnects of a slow consumer.
func TestMeasureNATS(t *testing.T) {
	measuring(t)
	bin := tekendBinary(t, t.TempDir())
	const maxPending = "max_pending: 268435456"
	ackWait := func(d string) string { return `ack_wait: "` + d + `"` }
	window := func(n string) string { return "max_ack_pending: " + n }
	cases := []natsCase{
		{name: "defaults/backlog", spec: bigBacklog},
		{name: "ack_pending=64/backlog", mqtt: []string{window("64")}, spec: bigBacklog},
		{name: "ack_pending=16/backlog", mqtt: []string{window("16")}, spec: bigBacklog},
		{name: "ack_pending=16,max_pending=256M/backlog", mqtt: []string{window("16")}, extra: []string{maxPending}, spec: bigBacklog},
		{name: "ack_pending=8/backlog", mqtt: []string{window("8")}, spec: bigBacklog},
		{name: "ack_pending=8/largest", mqtt: []string{window("8")}, spec: largestBacklog},
		{name: "ack_pending=8,max_pending=256M/largest", mqtt: []string{window("8")}, extra: []string{maxPending}, spec: largestBacklog},
		{name: "ack_pending=8,max_pending=256M/backlog", mqtt: []string{window("8")}, extra: []string{maxPending}, spec: bigBacklog},

		{name: "defaults/burst", spec: burst},
		{name: "ack_pending=8/burst", mqtt: []string{window("8")}, spec: burst},
		{name: "defaults/small", spec: smallBacklog},
		{name: "ack_pending=8/small", mqtt: []string{window("8")}, spec: smallBacklog},
		// A store slower than ack_wait, played with a short ack_wait:
		// what waits in the window for longer comes twice.
		{name: "defaults,ack_wait=1s/small", mqtt: []string{ackWait("1s")}, spec: smallBacklog},
		{name: "ack_pending=8,ack_wait=1s/small", mqtt: []string{window("8"), ackWait("1s")}, spec: smallBacklog},

		{name: "ack_pending=8,ack_wait=30s/crash", mqtt: []string{window("8"), ackWait("30s")}, spec: crash},
		{name: "ack_pending=8,ack_wait=2m/crash", mqtt: []string{window("8"), ackWait("2m")}, spec: crash},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := testenv.StartBroker(t, "nats", testenv.BrokerOptions{
				MaxMessageSize: testenv.Recommended.MaxMessageSize,
				NATS:           testenv.NATSOptions{MQTT: c.mqtt, Extra: c.extra},
			})
			f := runDrain(t, b, bin, c.spec)
			t.Logf("nats %s [%s %s]: %s", c.name, strings.Join(c.mqtt, " "), strings.Join(c.extra, " "), f)
		})
	}
}

// TestMeasureBrokers runs the burst and the crash on every broker as
// docs/BROKERS.md configures it (testenv.Recommended).
func TestMeasureBrokers(t *testing.T) {
	measuring(t)
	bin := tekendBinary(t, t.TempDir())
	for _, name := range testenv.BrokerNames {
		for _, k := range []struct {
			what string
			spec drainSpec
		}{{"burst", burst}, {"small", smallBacklog}, {"crash", crash}, {"largest", largestBacklog}} {
			t.Run(name+"/"+k.what, func(t *testing.T) {
				b := testenv.StartBroker(t, name, testenv.Recommended)
				t.Logf("%s %s: %s", name, k.what, runDrain(t, b, bin, k.spec))
			})
		}
	}
}

// TestMeasureInFlight measures Mosquitto's and RabbitMQ's in-flight window
// (their default, 20 and 10, against Recommended's 8) for the large
// backlogs: while tekend's inbox holds its byte bound it
// reads nothing, so an answer the broker sends behind the window (the
// SUBACK after a connect, a PUBACK) waits until tekend has stored what is
// ahead of it.
func TestMeasureInFlight(t *testing.T) {
	measuring(t)
	bin := tekendBinary(t, t.TempDir())
	for _, name := range []string{"mosquitto", "rabbitmq"} {
		for _, window := range []int{0, 8} {
			for _, k := range []struct {
				what string
				spec drainSpec
			}{{"backlog", bigBacklog}, {"largest", largestBacklog}} {
				t.Run(fmt.Sprintf("%s/in_flight=%d/%s", name, window, k.what), func(t *testing.T) {
					opts := testenv.Recommended
					opts.InFlight = window
					b := testenv.StartBroker(t, name, opts)
					t.Logf("%s in flight %d (0: default) %s: %s", name, window, k.what, runDrain(t, b, bin, k.spec))
				})
			}
		}
	}
}
