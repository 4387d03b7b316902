package testenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
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
	// Port is that listener's port.
	Port int
	// Restart stops the broker cleanly and starts it again on the same
	// port with its state: persistent sessions, their queued messages and
	// the retained messages. A shared broker refuses.
	Restart func() error
	// Log returns the end of the broker's log.
	Log func() string
	// Shared says other tests use the broker at the same time (see
	// ForEachSharedBroker): a test keeps to a topic root and client ids of
	// its own, and does not restart it.
	Shared bool
}

// BrokerOptions are settings every broker of the matrix takes, each in its
// own terms, and lines for one broker alone.
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
	// Mosquitto lines are appended to mosquitto.conf, where a later line
	// wins.
	Mosquitto []string
	// NATS lines go into nats-server.conf after those of the fields
	// above, where a later line wins.
	NATS NATSOptions
	// RabbitMQ lines are appended to rabbitmq.conf; each key at most once
	// with those of the fields above.
	RabbitMQ []string
}

// Recommended are the settings docs/BROKERS.md gives each broker for Teken,
// beyond listeners and persistence (which StartBroker always configures):
// the message size limit of docs/PROTOCOL.md; an in-flight window of 8 on
// every broker, so that an answer the broker sends behind the window (the
// SUBACK after a connect, a PUBACK) waits for at most 8 jobs while tekend's
// inbox holds its byte bound; and per broker what the measurements there
// chose. Its configuration blocks hold these lines, as a test checks.
var Recommended = BrokerOptions{
	MaxMessageSize: 50331648,
	InFlight:       8,
	Mosquitto:      []string{"max_queued_messages 100000"},
	NATS: NATSOptions{
		MQTT:  []string{`ack_wait: "30s"`},
		Extra: []string{"max_pending: 268435456"},
	},
	RabbitMQ: []string{"mqtt.subscription_ttl = 604800000"},
}

// BrokerNames are the brokers of the matrix, in the order ForEachBroker runs
// them.
var BrokerNames = []string{"mosquitto", "nats", "rabbitmq"}

// brokerPrograms are the programs each broker needs.
var brokerPrograms = map[string][]string{
	"mosquitto": {"mosquitto"},
	"nats":      {"nats-server"},
	"rabbitmq":  {"rabbitmq-server", "epmd"},
}

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
	for _, p := range brokerPrograms[name] {
		LookPath(t, p)
	}
	b, stop, err := startBroker(name, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return b
}

// ConfigLines are the configuration lines opts makes for the broker
// called name, beyond its listeners and persistence: for nats-server the
// top-level ones and, apart, those inside mqtt { }. startBroker writes
// these; docs/BROKERS.md shows Recommended's, as a test checks.
func (o BrokerOptions) ConfigLines(name string) (lines, mqtt []string) {
	size, inFlight := strconv.Itoa(o.MaxMessageSize), strconv.Itoa(o.InFlight)
	switch name {
	case "mosquitto":
		if o.MaxMessageSize > 0 {
			lines = append(lines, "message_size_limit "+size)
		}
		if o.InFlight > 0 {
			lines = append(lines, "max_inflight_messages "+inFlight)
		}
		lines = append(lines, o.Mosquitto...)
	case "nats":
		if o.MaxMessageSize > 0 {
			lines = append(lines, "max_payload: "+size)
		}
		if o.InFlight > 0 {
			mqtt = append(mqtt, "max_ack_pending: "+inFlight)
		}
		lines, mqtt = append(lines, o.NATS.Extra...), append(mqtt, o.NATS.MQTT...)
	case "rabbitmq":
		if o.MaxMessageSize > 0 {
			lines = append(lines, "max_message_size = "+size)
		}
		if o.InFlight > 0 {
			lines = append(lines, "mqtt.prefetch = "+inFlight)
		}
		lines = append(lines, o.RabbitMQ...)
	}
	return lines, mqtt
}

// startBroker starts a broker with its files in dir and returns it with the
// function that stops it.
func startBroker(name, dir string, opts BrokerOptions) (Broker, func(), error) {
	b := Broker{Name: name}
	lines, mqtt := opts.ConfigLines(name)
	switch name {
	case "mosquitto":
		// Persistence, which sandbox's Mosquitto is without, so that a
		// restart keeps sessions as the other two brokers' do; Mosquitto
		// writes its database when it stops. The later line wins.
		extra := append([]string{"persistence true", "persistence_location " + dir + "/"}, lines...)
		m, err := sandbox.StartMosquitto(sandbox.MosquittoOptions{Dir: dir, Extra: extra})
		if err != nil {
			return b, nil, err
		}
		b.URL, b.Port, b.Restart, b.Log = m.URL, m.Port, m.Restart, m.Log
		return b, m.Stop, nil
	case "nats":
		n, err := sandbox.StartNATS(sandbox.NATSOptions{Dir: dir, MQTT: mqtt, Extra: lines})
		if err != nil {
			return b, nil, err
		}
		b.URL, b.Port, b.Restart, b.Log = n.URL, n.Port, n.Restart, n.Log
		return b, n.Stop, nil
	case "rabbitmq":
		r, err := sandbox.StartRabbitMQ(sandbox.RabbitMQOptions{Dir: dir, Extra: lines})
		if err != nil {
			return b, nil, err
		}
		b.URL, b.Port, b.Restart, b.Log = r.URL, r.Port, r.Restart, r.Log
		return b, r.Stop, nil
	}
	return b, nil, fmt.Errorf("unknown broker %q, want one of %v", name, BrokerNames)
}

// shared holds the brokers of ForEachSharedBroker, one per name, each
// started by the first test that asks for it and stopped by
// StopSharedBrokers.
var shared struct {
	mu      sync.Mutex
	brokers map[string]*sharedBroker
}

type sharedBroker struct {
	once sync.Once
	b    Broker
	err  error
	stop func()
	dir  string
}

// ForEachSharedBroker runs fn in a parallel subtest per broker of
// BrokerNames, on a broker that every test of the package that asks for it
// shares: one start per test binary (a RabbitMQ node takes seconds to
// start, and each is a few hundred megabytes). The broker is Recommended's,
// with persistence; its Shared is true and its Restart refuses. A package
// that uses it calls StopSharedBrokers from its TestMain; a test binary
// that ends without doing so still takes the brokers with it (their
// Pdeathsig), but leaves their directories behind.
func ForEachSharedBroker(t *testing.T, fn func(t *testing.T, b Broker)) {
	t.Helper()
	for _, name := range BrokerNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, SharedBroker(t, name))
		})
	}
}

// SharedBroker returns the shared broker called name, starting it if no
// test did yet; see ForEachSharedBroker.
func SharedBroker(t testing.TB, name string) Broker {
	t.Helper()
	for _, p := range brokerPrograms[name] {
		LookPath(t, p)
	}
	shared.mu.Lock()
	if shared.brokers == nil {
		shared.brokers = map[string]*sharedBroker{}
	}
	s := shared.brokers[name]
	if s == nil {
		s = &sharedBroker{}
		shared.brokers[name] = s
	}
	shared.mu.Unlock()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "teken-shared-"+name+"-")
		if s.err != nil {
			return
		}
		s.b, s.stop, s.err = startBroker(name, s.dir, Recommended)
		s.b.Shared = true
		s.b.Restart = func() error { return errors.New("a shared broker is not restarted") }
	})
	if s.err != nil {
		t.Fatalf("shared %s: %v", name, s.err)
	}
	return s.b
}

// StopSharedBrokers stops every shared broker and removes its files; a
// package's TestMain calls it after the tests ran.
func StopSharedBrokers() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for name, s := range shared.brokers {
		if s.stop != nil {
			s.stop()
		}
		if s.dir != "" {
			_ = os.RemoveAll(s.dir)
		}
		delete(shared.brokers, name)
	}
}
