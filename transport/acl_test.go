package transport

// Per-client ACLs of a Teken deployment (docs/PROTOCOL.md, "Writing a
// central system"), proven with plain paho on each broker of the matrix:
// each terminal logs in as its terminal id, the central system as central,
// and the broker lets each do only what the ACL says. docs/BROKER-ACL.md
// gives the configuration these tests run and reports what they observe.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/internal/testenv"
)

const (
	aclRoot    = "teken/v1"
	aclA       = "kendari-setda-01"
	aclB       = "kendari-setda-02"
	aclCentral = "central"
)

// aclUsers are the users every broker knows, terminals first.
var aclUsers = []string{aclA, aclB, aclCentral}

func aclTopic(terminal, kind string) string { return aclRoot + "/t/" + terminal + "/" + kind }

// aclClientID is a client id as tekend makes it from the terminal id by
// default (daemon.Config.ClientID); RabbitMQ's permissions name the session
// queues by it.
func aclClientID(user string) string { return "teken-" + user }

// aclDenial is how a broker answers what the ACL forbids.
type aclDenial struct {
	subscribe string // to a filter the user may not read
	publish   string // to a topic the user may not write
	login     byte   // CONNACK return code for an unknown user, a wrong password, no credentials
	// takeover is the CONNACK return code when B connects under A's
	// client id (0: accepted, with A's session), and takeoverLoses says
	// whether the jobs queued for A then are lost to A.
	takeover      byte
	takeoverLoses bool
}

const (
	subGranted = "SUBACK QoS 1" // and, where the ACL forbids it, nothing delivered
	subRefused = "SUBACK 0x80"
	connClosed = "connection closed"
	pubDropped = "PUBACK, message dropped"
)

// aclDenials is each broker's answer (MQTT 3.1.1 §3.2.2.3 for the CONNACK
// codes: 3 server unavailable, 4 bad user name or password, 5 not
// authorized).
//
// Mosquitto 2.0's acl_file does not check a SUBSCRIBE at all ("FIXME -
// implement ACL subscription strings", mosquitto_acl_check_default in
// src/security_default.c) but each message as it is delivered (subs.c, and
// retain.c for retained ones); a PUBLISH it may not forward it acknowledges
// and drops (handle_publish.c; an MQTT 3.1.1 PUBACK has no reason code).
// A client that takes over a session under another user's client id keeps
// its subscriptions, but what is queued and what comes is checked against
// the new user and dropped (connection_check_acl in handle_connect.c).
//
// nats-server 2.9 answers a subscription its permissions refuse with 0x80
// (mqttProcessSubs, mqttSubAckFailure) and acknowledges a publish that
// failed its permission check without storing it (mqttProcessPub).
//
// RabbitMQ 3.10 checks topic permissions on the AMQP channel the MQTT
// connection works through (queue.bind for a SUBSCRIBE, check_publish for a
// PUBLISH) and closes the connection on a refusal (process_frame in
// rabbit_mqtt_processor.erl); a client id whose session queue the user may
// not declare is refused at CONNECT.
var aclDenials = map[string]aclDenial{
	"mosquitto":     {subscribe: subGranted, publish: pubDropped, login: 5, takeover: 0, takeoverLoses: true},
	"mosquitto-tls": {subscribe: subGranted, publish: pubDropped, takeover: 0, takeoverLoses: true},
	"nats":          {subscribe: subRefused, publish: pubDropped, login: 5, takeover: 0, takeoverLoses: false},
	"rabbitmq":      {subscribe: connClosed, publish: connClosed, login: 4, takeover: 3},
}

// aclBroker is a broker that authenticates every client and applies the ACL.
type aclBroker struct {
	testenv.Broker
	// passwords, or for a broker that takes the user from the client
	// certificate, certs (the CA, and a client certificate per user).
	passwords map[string]string
	ca        *testenv.CA
	certs     map[string]*testenv.KeyPair
	// natsClient is nats-server's NATS protocol port, zero for the others.
	natsClient int
}

// TestACL starts each broker with authentication and the ACL, and checks
// with one central system and two terminals, A and B, what each may do;
// mosquitto-tls is Mosquitto with the user taken from the client
// certificate.
//
// Absence is shown without waiting for time to pass: a broker delivers the
// messages of one subscription of one subscriber in the order it took them
// from one publisher (MQTT 3.1.1 §4.6), so once a message published later
// has come, an earlier one that was going to come would have. On Mosquitto
// and RabbitMQ this holds across a client's subscriptions too (one queue per
// session); nats-server makes a JetStream consumer per QoS 1 subscription,
// so there a refused subscription rests on its SUBACK.
func TestACL(t *testing.T) {
	t.Parallel()
	start := map[string]func(*testing.T) aclBroker{
		"mosquitto":     startACLMosquitto,
		"mosquitto-tls": startACLMosquittoTLS,
		"nats":          startACLNATS,
		"rabbitmq":      startACLRabbitMQ,
	}
	for _, name := range []string{"mosquitto", "mosquitto-tls", "nats", "rabbitmq"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := start[name](t)
			testACL(t, b, aclDenials[name])
		})
	}
}

func testACL(t *testing.T, b aclBroker, want aclDenial) {
	ctx := brokerCtx(t)
	testACLLogin(ctx, t, b, want)

	central := b.connect(ctx, t, aclCentral, aclClientID(aclCentral), nil)
	for _, kind := range []string{"receipts", "results", "status", "sync"} {
		central.subscribe(ctx, t, aclTopic("+", kind))
	}

	// A, with the offline status as its retained last will, on a
	// connection the test can cut without a DISCONNECT.
	var cut severable
	a := b.connect(ctx, t, aclA, aclClientID(aclA), func(o *paho.ClientOptions) {
		o.SetWill(aclTopic(aclA, "status"), "offline", 1, true).SetCustomOpenConnectionFn(cut.dial)
	})
	a.subscribe(ctx, t, aclTopic(aclA, "jobs"))
	a.subscribe(ctx, t, aclTopic(aclA, "control"))

	// B, on its own jobs, then on A's and on everyone's.
	bc := b.connect(ctx, t, aclB, aclClientID(aclB), nil)
	bc.subscribe(ctx, t, aclTopic(aclB, "jobs"))
	for _, f := range []string{aclTopic(aclA, "jobs"), aclTopic("+", "jobs")} {
		got, err := bc.trySubscribe(ctx, f)
		if err != nil {
			t.Fatalf("B subscribes to %s: %v", f, err)
		}
		t.Logf("B subscribes to %s: %s", f, got)
		if got != want.subscribe {
			t.Errorf("B subscribes to %s: %s, want %s", f, got, want.subscribe)
		}
		if got == connClosed {
			bc = b.connect(ctx, t, aclB, aclClientID(aclB), nil)
			bc.subscribe(ctx, t, aclTopic(aclB, "jobs"))
		}
	}

	// The central system's jobs and control reach their terminal, and
	// only it.
	central.publish(ctx, t, aclTopic(aclA, "jobs"), "job for A", false)
	central.publish(ctx, t, aclTopic(aclA, "control"), "control for A", false)
	central.publish(ctx, t, aclTopic(aclB, "jobs"), "job for B", false)
	a.await(ctx, t, aclTopic(aclA, "jobs"), "job for A")
	a.await(ctx, t, aclTopic(aclA, "control"), "control for A")
	bc.await(ctx, t, aclTopic(aclB, "jobs"), "job for B")
	if bc.got("job for A") {
		t.Error("B received A's job")
	}

	// What A writes reaches the central system, the status retained.
	for _, kind := range []string{"receipts", "results", "sync"} {
		a.publish(ctx, t, aclTopic(aclA, kind), kind+" from A", false)
		central.await(ctx, t, aclTopic(aclA, kind), kind+" from A")
	}
	a.publish(ctx, t, aclTopic(aclA, "status"), "online", true)
	central.await(ctx, t, aclTopic(aclA, "status"), "online")
	b.awaitRetained(ctx, t, "teken-central-status-1", "online")

	// B writing as A is refused; what B writes as itself comes after.
	got, err := bc.tryPublish(ctx, aclTopic(aclA, "results"), "forged by B")
	if err != nil {
		t.Fatalf("B publishes to A's results: %v", err)
	}
	t.Logf("B publishes to %s: %s", aclTopic(aclA, "results"), got)
	if got != want.publish {
		t.Errorf("B publishes to A's results: %s, want %s", got, want.publish)
	}
	if got == connClosed {
		bc = b.connect(ctx, t, aclB, aclClientID(aclB), nil)
	}
	bc.publish(ctx, t, aclTopic(aclB, "results"), "results from B", false)
	central.await(ctx, t, aclTopic(aclB, "results"), "results from B")
	if central.got("forged by B") {
		t.Error("the central system received B's message on A's results")
	}
	bc.Disconnect(250)

	// A's connection dies: its last will reaches the central system and
	// stays as A's retained status.
	if err := cut.sever(); err != nil {
		t.Fatal(err)
	}
	central.await(ctx, t, aclTopic(aclA, "status"), "offline")
	b.awaitRetained(ctx, t, "teken-central-status-2", "offline")

	testACLTakeover(ctx, t, b, central, want)
	if b.natsClient != 0 {
		testACLNATSProtocol(t, b)
	}
}

// testACLLogin checks that a client the broker does not know is refused
// at CONNECT, or for a broker that takes the user from the client
// certificate, in the TLS handshake. There the CA decides who is a user:
// any certificate it issued is one, named by its common name.
func testACLLogin(ctx context.Context, t *testing.T, b aclBroker, want aclDenial) {
	t.Helper()
	if b.ca != nil {
		for _, login := range []struct {
			what     string
			cert     *testenv.KeyPair
			accepted bool
		}{
			{"no client certificate", nil, false},
			{"a certificate from another CA", testenv.NewCA(t, "Another CA").Client(t, aclA), false},
			{"a certificate from the CA for an unknown name", b.ca.Client(t, "intruder"), true},
		} {
			c, _, err := b.dial(ctx, "", "teken-acl-login", func(o *paho.ClientOptions) {
				cfg := &tls.Config{RootCAs: b.ca.Pool(), MinVersion: tls.VersionTLS12}
				if login.cert != nil {
					cfg.Certificates = []tls.Certificate{login.cert.TLS}
				}
				o.SetTLSConfig(cfg)
			})
			if c != nil {
				c.Disconnect(0)
			}
			t.Logf("%s: connected %v (%v)", login.what, c != nil, err)
			if (c != nil) != login.accepted {
				t.Errorf("%s: connected %v, want %v", login.what, c != nil, login.accepted)
			}
		}
		return
	}
	for _, login := range []struct{ what, user, pass string }{
		{"unknown user", "intruder", rand.Text()},
		{"wrong password", aclA, rand.Text()},
		{"no credentials", "", ""},
	} {
		c, rc, err := b.dial(ctx, "", "teken-acl-refused", func(o *paho.ClientOptions) { o.SetUsername(login.user).SetPassword(login.pass) })
		if c != nil {
			c.Disconnect(0)
			t.Errorf("%s: the broker accepted the connection", login.what)
			continue
		}
		if rc == 0 {
			t.Fatalf("%s: no CONNACK: %v\nbroker log:\n%s", login.what, err, b.Log())
		}
		t.Logf("%s: CONNACK return code %d", login.what, rc)
		if rc != want.login {
			t.Errorf("%s: CONNACK return code %d, want %d", login.what, rc, want.login)
		}
	}
}

// testACLTakeover connects B under A's client id while A is away: MQTT
// names a session by its client id alone (§3.1.3.1), so a terminal that
// knows another's client id can take that session over unless the broker
// ties client ids to users.
func testACLTakeover(ctx context.Context, t *testing.T, b aclBroker, central *aclClient, want aclDenial) {
	t.Helper()
	away := []string{"job while A is away"}
	central.publish(ctx, t, aclTopic(aclA, "jobs"), away[0], false)
	hijack, rc, err := b.dial(ctx, aclB, aclClientID(aclA), nil)
	if hijack == nil && rc == 0 {
		t.Fatalf("B under A's client id: %v", err)
	}
	t.Logf("B under A's client id: CONNACK return code %d", rc)
	if rc != want.takeover {
		t.Errorf("B under A's client id: CONNACK return code %d, want %d", rc, want.takeover)
	}
	if hijack != nil {
		t.Cleanup(func() { hijack.Disconnect(0) })
		hijack.subscribe(ctx, t, aclTopic(aclB, "jobs"))
		away = append(away, "job while B holds A's session")
		central.publish(ctx, t, aclTopic(aclA, "jobs"), away[1], false)
		central.publish(ctx, t, aclTopic(aclB, "jobs"), "job for B under A's client id", false)
		hijack.await(ctx, t, aclTopic(aclB, "jobs"), "job for B under A's client id")
		for _, m := range hijack.in.snapshot() {
			if m.Topic() != aclTopic(aclB, "jobs") {
				t.Errorf("B under A's client id received %q on %s", m.Payload(), m.Topic())
			}
		}
		hijack.Disconnect(250)
	}
	// A comes back to its session; what was queued for it comes before
	// what is published now.
	a := b.connect(ctx, t, aclA, aclClientID(aclA), nil)
	central.publish(ctx, t, aclTopic(aclA, "jobs"), "job after A is back", false)
	a.await(ctx, t, aclTopic(aclA, "jobs"), "job after A is back")
	var lost []string
	for _, p := range away {
		if !a.got(p) {
			lost = append(lost, p)
		}
	}
	t.Logf("A back: lost %q", lost)
	if gotLost := len(lost) > 0; gotLost != want.takeoverLoses || gotLost && len(lost) != len(away) {
		t.Errorf("A back: lost %q of %q, want lost: %v", lost, away, want.takeoverLoses)
	}
}

// aclClient is one authenticated paho client and what it received.
type aclClient struct {
	paho.Client
	user string
	in   *brokerInbox
	lost chan struct{} // closed when the connection is lost
}

// dial connects with a persistent session under id, as tekend and a
// central system do, with user's credentials (none for ""), then edit's
// options. It returns the client if the broker accepted it, else the
// CONNACK's return code (0 if none came) and the error.
func (b aclBroker) dial(ctx context.Context, user, id string, edit func(*paho.ClientOptions)) (*aclClient, byte, error) {
	c := &aclClient{user: user, in: newBrokerInbox(), lost: make(chan struct{})}
	var once sync.Once
	o := pahoOpts(b.Broker, id, false, c.in).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(c.lost) }) })
	switch {
	case user == "":
	case b.ca != nil:
		o.SetTLSConfig(&tls.Config{RootCAs: b.ca.Pool(), Certificates: []tls.Certificate{b.certs[user].TLS}, MinVersion: tls.VersionTLS12})
	default:
		o.SetUsername(user).SetPassword(b.passwords[user])
	}
	if edit != nil {
		edit(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if err := awaitToken(ctx, tok); err != nil {
		return nil, tok.(*paho.ConnectToken).ReturnCode(), err
	}
	return c, 0, nil
}

// connect is dial that fails the test unless the broker accepts.
func (b aclBroker) connect(ctx context.Context, t *testing.T, user, id string, edit func(*paho.ClientOptions)) *aclClient {
	t.Helper()
	c, _, err := b.dial(ctx, user, id, edit)
	if err != nil {
		t.Fatalf("connect %s as %s: %v\nbroker log:\n%s", id, user, err, b.Log())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// awaitRetained subscribes the central system, under a new client id, to
// A's status alone and waits for the retained message payload.
func (b aclBroker) awaitRetained(ctx context.Context, t *testing.T, id, payload string) {
	t.Helper()
	c := b.connect(ctx, t, aclCentral, id, nil)
	c.subscribe(ctx, t, aclTopic(aclA, "status"))
	if m := c.await(ctx, t, aclTopic(aclA, "status"), payload); !m.Retained() {
		t.Errorf("%s on A's status came without the retain flag", payload)
	}
	c.Disconnect(250)
}

func (c *aclClient) subscribe(ctx context.Context, t *testing.T, filter string) {
	t.Helper()
	if got, err := c.trySubscribe(ctx, filter); err != nil || got != subGranted {
		t.Fatalf("%s subscribes to %s: %s %v", c.user, filter, got, err)
	}
}

// trySubscribe subscribes at QoS 1 and says how the broker answered:
// subGranted, subRefused or connClosed.
func (c *aclClient) trySubscribe(ctx context.Context, filter string) (string, error) {
	tok := c.Subscribe(filter, 1, nil)
	if err := awaitToken(ctx, tok); err != nil {
		return c.closed(ctx, err)
	}
	switch rc := tok.(*paho.SubscribeToken).Result()[filter]; rc {
	case 1:
		return subGranted, nil
	case 0x80:
		return subRefused, nil
	default:
		return "", fmt.Errorf("SUBACK return code %#x", rc)
	}
}

func (c *aclClient) publish(ctx context.Context, t *testing.T, topic, payload string, retained bool) {
	t.Helper()
	if err := awaitToken(ctx, c.Publish(topic, 1, retained, payload)); err != nil {
		t.Fatalf("%s publishes to %s: %v", c.user, topic, err)
	}
}

// tryPublish publishes at QoS 1 and says how the broker answered:
// pubDropped (a PUBACK; the caller finds out whether it was dropped) or
// connClosed. With a persistent session paho keeps a publish whose
// connection was lost for the next one, so its token does not end then.
func (c *aclClient) tryPublish(ctx context.Context, topic, payload string) (string, error) {
	tok := c.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return c.closed(ctx, err)
		}
		return pubDropped, nil
	case <-c.lost:
		return connClosed, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// closed returns connClosed once the connection is lost, after an operation
// failed with err.
func (c *aclClient) closed(ctx context.Context, err error) (string, error) {
	select {
	case <-c.lost:
		return connClosed, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%w, and the connection stays open", err)
	}
}

// await waits for payload on topic and returns it.
func (c *aclClient) await(ctx context.Context, t *testing.T, topic, payload string) paho.Message {
	t.Helper()
	var got paho.Message
	err := c.in.await(ctx, payload, func(msgs []paho.Message) bool {
		for _, m := range msgs {
			if m.Topic() == topic && string(m.Payload()) == payload {
				got = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%s: %v", c.user, err)
	}
	return got
}

func (c *aclClient) got(payload string) bool { return counts(c.in.snapshot())[payload] > 0 }

// severable dials a client's connection, in TLS if paho was given a TLS
// configuration, and can close it under paho's feet, so that the broker
// sees it die without a DISCONNECT and publishes the last will (MQTT 3.1.1
// §3.1.2.5).
type severable struct {
	mu   sync.Mutex
	conn net.Conn
}

func (s *severable) dial(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if o.TLSConfig != nil {
		c, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
	} else {
		c, err = d.Dial("tcp", uri.Host)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	return c, nil
}

func (s *severable) sever() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return errors.New("not connected")
	}
	return s.conn.Close()
}

func aclPasswords() map[string]string {
	p := map[string]string{}
	for _, u := range aclUsers {
		p[u] = rand.Text()
	}
	return p
}

// mosquittoACL is the acl_file of docs/PROTOCOL.md.
const mosquittoACL = `pattern read  teken/v1/t/%u/jobs
pattern read  teken/v1/t/%u/control
pattern write teken/v1/t/%u/receipts
pattern write teken/v1/t/%u/results
pattern write teken/v1/t/%u/status
pattern write teken/v1/t/%u/sync

user central
topic write teken/v1/t/+/jobs
topic write teken/v1/t/+/control
topic read  teken/v1/t/+/receipts
topic read  teken/v1/t/+/results
topic read  teken/v1/t/+/status
topic read  teken/v1/t/+/sync
`

func startACLMosquitto(t *testing.T) aclBroker {
	passwd := testenv.LookPath(t, "mosquitto_passwd")
	dir := t.TempDir()
	b := aclBroker{passwords: aclPasswords()}
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	for i, u := range aclUsers {
		args := []string{"-b", pwFile, u, b.passwords[u]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v\n%s", u, err, out)
		}
	}
	if err := os.WriteFile(aclFile, []byte(mosquittoACL), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Extra: []string{
		"allow_anonymous false",
		"password_file " + pwFile,
		"acl_file " + aclFile,
	}})
	b.Broker = testenv.Broker{Name: "mosquitto", URL: m.URL, Port: m.Port, Log: m.Log}
	return b
}

// startACLMosquittoTLS starts Mosquitto with a TLS listener that requires
// a client certificate from its CA and takes the user from its common name
// (use_identity_as_username), and the same acl_file; no password_file.
func startACLMosquittoTLS(t *testing.T) aclBroker {
	aclFile := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(aclFile, []byte(mosquittoACL), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true, Extra: []string{
		"allow_anonymous false",
		"use_identity_as_username true",
		"acl_file " + aclFile,
	}})
	b := aclBroker{ca: m.CA, certs: map[string]*testenv.KeyPair{}}
	for _, u := range aclUsers {
		b.certs[u] = m.CA.Client(t, u)
	}
	b.Broker = testenv.Broker{Name: "mosquitto-tls", URL: m.URL, Port: m.Port, Log: m.Log}
	return b
}

// natsAuthorization is the authorization block of nats-server.conf.
// passwords holds bcrypt hashes, which nats-server recognises by their
// prefix. An MQTT topic a/b/c is the NATS subject a.b.c, + is *. A QoS 1
// subscription is a JetStream consumer that delivers to $MQTT.sub.<nuid>,
// which the client itself subscribes to (processJSConsumer in
// server/mqtt.go), hence $MQTT.sub.> for every user; over MQTT no client
// can subscribe to $MQTT.sub. itself (mqttProcessSubs refuses the prefix),
// but a NATS protocol client could read every MQTT session's deliveries
// there, so the users may connect over MQTT only.
func natsAuthorization(passwords map[string]string) string {
	user := func(name, pub, sub string) string {
		return fmt.Sprintf(`    {
      user: %q
      password: %q
      allowed_connection_types: ["MQTT"]
      permissions: {
        publish: [%s]
        subscribe: [%s, "$MQTT.sub.>"]
      }
    }
`, name, passwords[name], pub, sub)
	}
	subjects := func(terminal string, kinds ...string) string {
		var s []string
		for _, k := range kinds {
			s = append(s, strconv.Quote("teken.v1.t."+terminal+"."+k))
		}
		return strings.Join(s, ", ")
	}
	var out strings.Builder
	out.WriteString("authorization {\n  users = [\n")
	out.WriteString(user(aclCentral, subjects("*", "jobs", "control"), subjects("*", "receipts", "results", "status", "sync")))
	for _, term := range []string{aclA, aclB} {
		out.WriteString(user(term, subjects(term, "receipts", "results", "status", "sync"), subjects(term, "jobs", "control")))
	}
	out.WriteString("  ]\n}\n")
	return out.String()
}

// startACLNATS starts nats-server with the authorization block in an
// included file. The sandbox's readiness probe connects without
// credentials, so the server starts with a user for it as no_auth_user,
// allowed nothing, and is then reloaded (SIGHUP, through --signal reload)
// with the block alone, after which a client without credentials is
// refused.
func startACLNATS(t *testing.T) aclBroker {
	bin := testenv.LookPath(t, "nats-server")
	dir := t.TempDir()
	b := aclBroker{passwords: map[string]string{}}
	plain := aclPasswords()
	for u, p := range plain {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.passwords[u] = string(h)
	}
	auth := natsAuthorization(b.passwords)
	b.passwords = plain
	probe := fmt.Sprintf("no_auth_user: teken-probe\nauthorization { users = [ {user: teken-probe, password: %q, permissions: {publish: {deny: \">\"}, subscribe: {deny: \">\"}}} ] }\n", rand.Text())
	authFile := filepath.Join(dir, "authorization.conf")
	if err := os.WriteFile(authFile, []byte(probe), 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "nats-server.pid")
	n, err := sandbox.StartNATS(sandbox.NATSOptions{Dir: dir, Extra: []string{
		"pid_file: " + strconv.Quote(pidFile),
		`include "authorization.conf"`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	b.Broker = testenv.Broker{Name: "nats", URL: n.URL, Port: n.Port, Log: n.Log}
	b.natsClient = n.ClientPort

	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--signal", "reload="+pidFile).CombinedOutput(); err != nil {
		t.Fatalf("nats-server --signal reload: %v\n%s", err, out)
	}
	ctx := brokerCtx(t)
	err = testenv.WaitFor(ctx, 30*time.Second, func() error {
		c, rc, err := b.dial(ctx, "", "teken-acl-reload", nil)
		if c != nil {
			c.Disconnect(0)
			return errors.New("a client without credentials is still accepted")
		}
		if rc == 0 {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the reload: %v\n%s", err, n.Log())
	}
	return b
}

// testACLNATSProtocol shows that allowed_connection_types keeps a
// terminal's credentials off the NATS protocol port.
func testACLNATSProtocol(t *testing.T, b aclBroker) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.natsClient), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT {\"user\":%q,\"pass\":%q,\"verbose\":false,\"pedantic\":false}\r\nSUB $MQTT.sub.> 1\r\nPING\r\n", aclB, b.passwords[aclB])
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !bytes.Contains(got.Bytes(), []byte("-ERR")) && !bytes.Contains(got.Bytes(), []byte("PONG")) {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	t.Logf("B over the NATS protocol: %q", got.String())
	if !bytes.Contains(got.Bytes(), []byte("-ERR 'Authorization Violation'")) {
		t.Errorf("B's credentials over the NATS protocol: %q, want -ERR 'Authorization Violation'", got.String())
	}
}

// rabbitCommands are the rabbitmqctl commands that make the users and their
// permissions on vhost /. A terminal's configure, write and read
// permissions name its own session queues, mqtt-subscription-<client
// id>qos0 and qos1 (rabbit_mqtt_processor.erl), which ties its client id
// to its user; the central system's client ids are not fixed, so it gets
// every session queue. Topic permissions on amq.topic, where the MQTT
// plugin publishes and binds: the write regex is matched against a
// PUBLISH's routing key (a/b/c becomes a.b.c), the read regex against a
// SUBSCRIBE's binding key (+ becomes *).
func rabbitCommands(passwords map[string]string) [][]string {
	cmds := [][]string{{"delete_user", "guest"}}
	for _, u := range aclUsers {
		cmds = append(cmds, []string{"add_user", u, passwords[u]})
		if u == aclCentral {
			cmds = append(cmds,
				[]string{"set_permissions", "-p", "/", u, `^mqtt-subscription-.*$`, `^(amq\.topic|mqtt-subscription-.*)$`, `^(amq\.topic|mqtt-subscription-.*)$`},
				[]string{"set_topic_permissions", "-p", "/", u, "amq.topic", `^teken\.v1\.t\.[^.]+\.(jobs|control)$`, `^teken\.v1\.t\.[^.]+\.(receipts|results|status|sync)$`})
			continue
		}
		q := `mqtt-subscription-` + aclClientID(u) + `qos[01]`
		cmds = append(cmds,
			[]string{"set_permissions", "-p", "/", u, "^" + q + "$", `^(amq\.topic|` + q + `)$`, `^(amq\.topic|` + q + `)$`},
			[]string{"set_topic_permissions", "-p", "/", u, "amq.topic", `^teken\.v1\.t\.` + u + `\.(receipts|results|status|sync)$`, `^teken\.v1\.t\.` + u + `\.(jobs|control)$`})
	}
	return cmds
}

// startACLRabbitMQ starts a node, makes the users with rabbitmqctl and
// turns anonymous MQTT logins off. rabbitmq.conf's mqtt.allow_anonymous =
// false would keep the sandbox's readiness probe, which connects without
// credentials, from ever seeing a CONNACK 0; the node therefore starts
// with the sandbox's anonymous guest, and the same setting is then made
// at run time (the plugin reads allow_anonymous at every CONNECT, creds in
// rabbit_mqtt_processor.erl) and guest deleted.
func startACLRabbitMQ(t *testing.T) aclBroker {
	r := testenv.StartRabbitMQWith(t, testenv.RabbitMQOptions{})
	b := aclBroker{passwords: aclPasswords()}
	b.Broker = testenv.Broker{Name: "rabbitmq", URL: r.URL, Port: r.Port, Log: r.Log}
	ctx := brokerCtx(t)
	cmds := append(rabbitCommands(b.passwords), []string{"eval", "application:set_env(rabbitmq_mqtt, allow_anonymous, false)."})
	for _, args := range cmds {
		if _, err := r.Ctl(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
