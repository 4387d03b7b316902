// Package sandbox starts private instances of the real components Teken runs
// against — pcscd with the vsmartcard vpcd reader driver, and the three
// MQTT brokers of the matrix: Mosquitto, nats-server (JetStream and its MQTT
// listener) and RabbitMQ (the rabbitmq_mqtt plugin, with an epmd of its
// own) — on free loopback ports, for the tests (through internal/testenv)
// and for `make demo`. Each start waits for readiness by polling a
// condition: a TCP connect for Mosquitto, an accepted MQTT CONNECT for
// NATS and RabbitMQ, which listen before they can take a session. Every
// broker keeps its state in its own directory across Stop, Restart and (for
// NATS and RabbitMQ) Kill, and its children die with the test process
// (Pdeathsig, see StartHeld).
//
// Nothing it starts listens beyond loopback. Mosquitto is told to listen on
// 127.0.0.1; nats-server gets a host for its client and MQTT listeners and
// no monitoring, cluster, gateway or leafnode block; RabbitMQ gets
// 127.0.0.1 for AMQP, MQTT and its Erlang distribution port, and its epmd
// is handed a socket on 127.0.0.1 (epmd -systemd), since epmd told an
// address listens on ::1 as well. vpcd cannot be told: it binds INADDR_ANY
// (opensock in vsmartcard's virtualsmartcard/src/vpcd/vpcd.c), and a
// connection to its port is a card in the reader, so on a shared network
// anyone could put a card into a demo terminal. The private pcscd therefore
// runs in network and mount namespaces of its own (unshare --net --mount),
// where only lo exists, and for each reader a forwarder in this process
// listens on the host's 127.0.0.1 and, per connection, dials vpcd from
// inside that namespace (setns on a locked thread, see inNetns) and copies
// both ways. A card's connection and its end pass through one for one, so
// vpcd sees an insertion and a removal as before.
package sandbox
