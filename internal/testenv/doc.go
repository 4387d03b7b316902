// Package testenv starts the real components that Teken's tests run against —
// a private pcscd with the vsmartcard vpcd reader driver, and the MQTT
// brokers Mosquitto, nats-server (JetStream, MQTT listener) and RabbitMQ
// (MQTT plugin) — on free loopback ports, waits for each by polling a
// condition, and stops it in t.Cleanup so that nothing outlives the test.
//
// The broker matrix runs one test on every broker: ForEachBroker gives each
// subtest a broker of its own, with persistence (BrokerOptions says the
// limits and lines, Recommended holds the settings docs/BROKERS.md gives);
// ForEachSharedBroker gives every test of a package the same broker per
// kind, started once, for tests that keep to a topic root of their own and
// never restart it (a RabbitMQ node takes seconds to start).
//
// A component that cannot be started makes the test skip on a developer
// machine, and fail when CI=true: CI must never pass by skipping.
package testenv
