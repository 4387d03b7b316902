package testenv_test

import (
	"context"
	"crypto/tls"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-piv/piv-go/v2/piv"

	"github.com/tekenid/teken/internal/testenv"
)

func TestPrivatePCSCDListsVirtualReaders(t *testing.T) {
	d := testenv.StartPCSCD(t)
	var cards []string
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		var err error
		cards, err = piv.Cards()
		return err
	})
	if err != nil {
		t.Fatalf("piv.Cards through %s: %v\npcscd log:\n%s", d.Socket, err, d.Log())
	}
	for _, want := range d.Readers {
		if !slices.Contains(cards, want) {
			t.Errorf("reader %q not listed; got %q", want, cards)
		}
	}
}

func TestPrivatePCSCDRestart(t *testing.T) {
	d := testenv.StartPCSCD(t)
	d.Kill()
	if _, err := piv.Cards(); err == nil {
		t.Fatal("piv.Cards succeeded with pcscd killed")
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := piv.Cards(); err != nil {
		t.Fatalf("piv.Cards after restart: %v", err)
	}
}

func TestMosquittoQoS1RoundTrip(t *testing.T) {
	m := testenv.StartMosquitto(t)
	roundTrip(t, mqtt.NewClientOptions().AddBroker(m.URL), m)
}

func TestMosquittoTLSClientCertificates(t *testing.T) {
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true})
	opts := mqtt.NewClientOptions().AddBroker(m.URL).SetTLSConfig(&tls.Config{
		RootCAs:      m.CA.Pool(),
		Certificates: []tls.Certificate{m.Client.TLS},
		MinVersion:   tls.VersionTLS12,
	})
	roundTrip(t, opts, m)

	other := testenv.NewCA(t, "another CA").Client(t, "intruder")
	bad := mqtt.NewClientOptions().AddBroker(m.URL).SetConnectRetry(false).SetTLSConfig(&tls.Config{
		RootCAs:      m.CA.Pool(),
		Certificates: []tls.Certificate{other.TLS},
		MinVersion:   tls.VersionTLS12,
	})
	c := mqtt.NewClient(bad)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("broker accepted a client certificate from another CA")
	}
}

func roundTrip(t *testing.T, opts *mqtt.ClientOptions, m *testenv.Mosquitto) {
	t.Helper()
	got := make(chan mqtt.Message, 1)
	c := mqtt.NewClient(opts.SetClientID("teken-smoke").SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v\nbroker log:\n%s", tok.Error(), m.Log())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("teken/smoke", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish("teken/smoke", 1, false, "halo"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "halo" || m.Qos() != 1 {
			t.Fatalf("got %q at QoS %d", m.Payload(), m.Qos())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not received")
	}
}
