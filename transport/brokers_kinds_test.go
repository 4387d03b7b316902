package transport

// Behaviours of one broker of the matrix: RabbitMQ's subscription TTL,
// nats-server's ack_wait, and what survives a SIGKILL of the two brokers
// that write a message down before they acknowledge it.

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/internal/testenv"
)

// TestBrokersRabbitMQSubscriptionTTLIsFixed shows why mqtt.subscription_ttl
// must be settled before the first terminal connects: RabbitMQ declares a
// persistent session's queue with it as x-expires, and once the setting
// differs, declaring the queue again, as every connect of the session does,
// is refused (PRECONDITION_FAILED, inequivalent arg 'x-expires') and the
// connection closed before CONNACK.
func TestBrokersRabbitMQSubscriptionTTLIsFixed(t *testing.T) {
	t.Parallel()
	r := testenv.StartRabbitMQWith(t, testenv.RabbitMQOptions{SubscriptionTTL: time.Hour})
	b := testenv.Broker{Name: "rabbitmq", URL: r.URL, Port: r.Port, Restart: r.Restart, Log: r.Log}
	ctx := brokerCtx(t)
	const topic = "teken/test/ttl"
	sub, _ := pahoConnect(ctx, t, b, pahoOpts(b, "teken-ttl-sub", false, nil))
	pahoSubscribe(ctx, t, sub, topic)
	sub.Disconnect(250)

	if err := r.RestartWith(sandbox.RabbitMQOptions{SubscriptionTTL: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(pahoOpts(b, "teken-ttl-sub", false, nil))
	if err := awaitToken(ctx, c.Connect()); err == nil {
		c.Disconnect(0)
		t.Fatal("the persistent session connected again after mqtt.subscription_ttl changed")
	} else {
		t.Logf("connect after the change: %v", err)
	}
	const refusal = "PRECONDITION_FAILED - inequivalent arg 'x-expires'"
	err := testenv.WaitFor(ctx, time.Minute, func() error {
		if strings.Contains(r.Log(), refusal) {
			return nil
		}
		return errors.New("no " + refusal + " in the broker's log")
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Log())
	}

	// With the TTL the queue was declared with, the session is back.
	if err := r.RestartWith(sandbox.RabbitMQOptions{SubscriptionTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, present := pahoConnect(ctx, t, b, pahoOpts(b, "teken-ttl-sub", false, nil)); !present {
		t.Error("CONNACK without session present")
	}
}

// TestBrokersNATSRedeliversAfterAckWait shows what governs how soon nats-server
// sends a persistent session again what it took without acknowledging: not
// the reconnect, but the mqtt block's ack_wait (default 30 s), counted from
// the first delivery.
func TestBrokersNATSRedeliversAfterAckWait(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATSWith(t, testenv.NATSOptions{MQTT: []string{`ack_wait: "2s"`, "max_ack_pending: 5"}})
	b := testenv.Broker{Name: "nats", URL: n.URL, Port: n.Port, Restart: n.Restart, Log: n.Log}
	ctx := brokerCtx(t)
	const topic = "teken/test/ackwait"
	held := newBrokerInbox()
	sub, _ := pahoConnect(ctx, t, b, pahoOpts(b, "teken-ackwait-sub", false, held).SetAutoAckDisabled(true))
	pahoSubscribe(ctx, t, sub, topic)
	pub, _ := pahoConnect(ctx, t, b, pahoOpts(b, "teken-ackwait-pub", true, nil))
	pahoPublish(ctx, t, pub, topic, []byte("job"), false)
	if err := held.await(ctx, "first delivery", func(msgs []paho.Message) bool { return len(msgs) > 0 }); err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	sub.Disconnect(0)
	in := newBrokerInbox()
	pahoConnect(ctx, t, b, pahoOpts(b, "teken-ackwait-sub", false, in))
	if err := in.await(ctx, "redelivery", func(msgs []paho.Message) bool { return len(msgs) > 0 }); err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	// Informative only, no assertion on time.
	t.Logf("delivered again %v after the first delivery, DUP %v", time.Since(first).Round(time.Millisecond), in.snapshot()[0].Duplicate())
}

// TestBrokersKeepAcknowledgedAcrossKill shows that nats-server (JetStream)
// and RabbitMQ (a durable queue) have written a message to their store when
// they acknowledge it: what is queued for an absent persistent session
// survives a SIGKILL of the broker, as a crash or an OOM kill. (A power cut,
// which also loses what the kernel had not yet written, is not tested.)
// Mosquitto is not in it: the sandbox does not kill it, and it writes its
// persistence file only at shutdown and every autosave_interval, so a crash
// loses what came since (mosquitto.conf(5)).
func TestBrokersKeepAcknowledgedAcrossKill(t *testing.T) {
	t.Parallel()
	const n = 200
	for _, name := range []string{"nats", "rabbitmq"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var b testenv.Broker
			var kill func()
			switch name {
			case "nats":
				s := testenv.StartNATS(t)
				b, kill = testenv.Broker{Name: name, URL: s.URL, Port: s.Port, Restart: s.Restart, Log: s.Log}, s.Kill
			case "rabbitmq":
				s := testenv.StartRabbitMQ(t)
				b, kill = testenv.Broker{Name: name, URL: s.URL, Port: s.Port, Restart: s.Restart, Log: s.Log}, s.Kill
			}
			ctx := brokerCtx(t)
			const topic = "teken/test/kill"
			sub, _ := pahoConnect(ctx, t, b, pahoOpts(b, "teken-kill-sub", false, nil))
			pahoSubscribe(ctx, t, sub, topic)
			sub.Disconnect(250)
			pub, _ := pahoConnect(ctx, t, b, pahoOpts(b, "teken-kill-pub", true, nil))
			for i := range n {
				pahoPublish(ctx, t, pub, topic, []byte(strconv.Itoa(i)), false)
			}
			kill()
			pub.Disconnect(0)
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
			in := newBrokerInbox()
			if _, present := pahoConnect(ctx, t, b, pahoOpts(b, "teken-kill-sub", false, in)); !present {
				t.Error("CONNACK without session present")
			}
			if err := in.await(ctx, "after the kill", func(msgs []paho.Message) bool { return len(counts(msgs)) >= n }); err != nil {
				t.Fatalf("%v\nbroker log:\n%s", err, b.Log())
			}
			t.Logf("all %d acknowledged messages survived SIGKILL; %d deliveries", n, len(in.snapshot()))
		})
	}
}
