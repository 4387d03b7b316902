package testenv

import (
	"strconv"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/sandbox"
)

// NATSOptions selects a nats-server's configuration.
type NATSOptions struct {
	// MQTT lines go inside the mqtt { } block: "max_ack_pending: 100".
	MQTT []string
	// Extra lines are appended at the top level: "max_payload: 262144".
	Extra []string
}

// StartNATS starts a nats-server of the test's own, with JetStream and an
// MQTT listener on free 127.0.0.1 ports.
func StartNATS(t testing.TB) *sandbox.NATS {
	t.Helper()
	return StartNATSWith(t, NATSOptions{})
}

// StartNATSWith starts a nats-server with the given options and stops it
// when the test ends.
func StartNATSWith(t testing.TB, opt NATSOptions) *sandbox.NATS {
	t.Helper()
	LookPath(t, "nats-server")
	n, err := sandbox.StartNATS(sandbox.NATSOptions{Dir: t.TempDir(), MQTT: opt.MQTT, Extra: opt.Extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

// RabbitMQOptions selects a RabbitMQ node's configuration.
type RabbitMQOptions struct {
	// SubscriptionTTL is mqtt.subscription_ttl; zero keeps the broker's
	// default (24 hours in 3.10).
	SubscriptionTTL time.Duration
	// Extra lines are appended to rabbitmq.conf: "mqtt.prefetch = 50".
	Extra []string
}

// StartRabbitMQ starts a RabbitMQ node of the test's own with the MQTT
// plugin, every listener and its epmd on free 127.0.0.1 ports. It takes
// several seconds.
func StartRabbitMQ(t testing.TB) *sandbox.RabbitMQ {
	t.Helper()
	return StartRabbitMQWith(t, RabbitMQOptions{})
}

// StartRabbitMQWith starts a RabbitMQ node with the given options and stops
// it, and its epmd, when the test ends.
func StartRabbitMQWith(t testing.TB, opt RabbitMQOptions) *sandbox.RabbitMQ {
	t.Helper()
	LookPath(t, "rabbitmq-server")
	LookPath(t, "epmd")
	r, err := sandbox.StartRabbitMQ(sandbox.RabbitMQOptions{Dir: t.TempDir(), SubscriptionTTL: opt.SubscriptionTTL, Extra: opt.Extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Broker is one broker of the matrix that the MQTT contract is proven on,
// with what a test needs of it whatever its kind.
type Broker struct {
	// Name is "mosquitto", "nats" or "rabbitmq", and the subtest's name.
	Name string
	// URL is its MQTT listener, tcp://127.0.0.1:PORT.
	URL string
	// Restart stops the broker cleanly and starts it again on the same
	// port with its state: persistent sessions, their queued messages and
	// the retained messages.
	Restart func() error
	// Log returns the end of the broker's log.
	Log func() string
}

// BrokerOptions are settings every broker of the matrix takes, each in its
// own terms.
type BrokerOptions struct {
	// MaxMessageSize, when positive, is the broker's message size limit
	// in bytes: Mosquitto's message_size_limit, nats-server's max_payload
	// (which 2.9 does not apply to MQTT, see docs/BROKERS.md), RabbitMQ's
	// max_message_size.
	MaxMessageSize int
	// InFlight, when positive, is how many QoS 1 messages the broker
	// sends a client before it waits for PUBACKs: Mosquitto's
	// max_inflight_messages, nats-server's mqtt max_ack_pending,
	// RabbitMQ's mqtt.prefetch.
	InFlight int
}

// BrokerNames are the brokers of the matrix, in the order ForEachBroker runs
// them.
var BrokerNames = []string{"mosquitto", "nats", "rabbitmq"}

// ForEachBroker runs fn in a subtest per broker of BrokerNames, each with a
// broker of its own in its default configuration.
func ForEachBroker(t *testing.T, fn func(t *testing.T, b Broker)) {
	t.Helper()
	ForEachBrokerWith(t, BrokerOptions{}, fn)
}

// ForEachBrokerWith is ForEachBroker with options. The subtests run in
// parallel with each other (RabbitMQ alone takes seconds to start); a broker
// its programs are missing for skips its subtest, or fails it under CI.
func ForEachBrokerWith(t *testing.T, opts BrokerOptions, fn func(t *testing.T, b Broker)) {
	t.Helper()
	for _, name := range BrokerNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, StartBroker(t, name, opts))
		})
	}
}

// StartBroker starts the broker called name (one of BrokerNames) for the
// test, with persistence, and stops it when the test ends.
func StartBroker(t testing.TB, name string, opts BrokerOptions) Broker {
	t.Helper()
	switch name {
	case "mosquitto":
		// Persistence, which sandbox's Mosquitto is without, so that a
		// restart keeps sessions as the other two brokers' do; Mosquitto
		// writes its database when it stops. The later line wins.
		extra := []string{"persistence true", "persistence_location " + t.TempDir() + "/"}
		if opts.MaxMessageSize > 0 {
			extra = append(extra, "message_size_limit "+strconv.Itoa(opts.MaxMessageSize))
		}
		if opts.InFlight > 0 {
			extra = append(extra, "max_inflight_messages "+strconv.Itoa(opts.InFlight))
		}
		m := StartMosquittoWith(t, MosquittoOptions{Extra: extra})
		return Broker{Name: name, URL: m.URL, Restart: m.Restart, Log: m.Log}
	case "nats":
		var o NATSOptions
		if opts.MaxMessageSize > 0 {
			o.Extra = append(o.Extra, "max_payload: "+strconv.Itoa(opts.MaxMessageSize))
		}
		if opts.InFlight > 0 {
			o.MQTT = append(o.MQTT, "max_ack_pending: "+strconv.Itoa(opts.InFlight))
		}
		n := StartNATSWith(t, o)
		return Broker{Name: name, URL: n.URL, Restart: n.Restart, Log: n.Log}
	case "rabbitmq":
		var o RabbitMQOptions
		if opts.MaxMessageSize > 0 {
			o.Extra = append(o.Extra, "max_message_size = "+strconv.Itoa(opts.MaxMessageSize))
		}
		if opts.InFlight > 0 {
			o.Extra = append(o.Extra, "mqtt.prefetch = "+strconv.Itoa(opts.InFlight))
		}
		r := StartRabbitMQWith(t, o)
		return Broker{Name: name, URL: r.URL, Restart: r.Restart, Log: r.Log}
	}
	t.Fatalf("unknown broker %q, want one of %v", name, BrokerNames)
	return Broker{}
}
