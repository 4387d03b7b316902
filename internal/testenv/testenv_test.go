package testenv_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
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
	roundTrip(t, transport.Connection{Brokers: []string{m.URL}}, m)
}

func TestMosquittoTLSClientCertificates(t *testing.T) {
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true})
	roundTrip(t, transport.Connection{Brokers: []string{m.URL}, TLS: &tls.Config{
		RootCAs:      m.CA.Pool(),
		Certificates: []tls.Certificate{m.Client.TLS},
		MinVersion:   tls.VersionTLS12,
	}}, m)

	other := testenv.NewCA(t, "another CA").Client(t, "intruder")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mon, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: transport.Connection{Brokers: []string{m.URL}, ClientID: "intruder", Logger: quiet(), TLS: &tls.Config{
			RootCAs:      m.CA.Pool(),
			Certificates: []tls.Certificate{other.TLS},
			MinVersion:   tls.VersionTLS12,
		}},
		Filters: []string{"teken/smoke"},
		Handle:  func(transport.Message) {},
	})
	if err == nil {
		_ = mon.Close(ctx)
		t.Fatal("broker accepted a client certificate from another CA")
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func roundTrip(t *testing.T, conn transport.Connection, m *testenv.Mosquitto) {
	t.Helper()
	conn.ClientID, conn.Logger = "teken-smoke", quiet()
	got := make(chan transport.Message, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mon, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: conn,
		Filters:    []string{"teken/smoke"},
		Handle:     func(m transport.Message) { got <- m },
	})
	if err != nil {
		t.Fatalf("connect and subscribe: %v\nbroker log:\n%s", err, m.Log())
	}
	defer mon.Close(ctx)
	if err := mon.Publish(ctx, "teken/smoke", []byte("halo"), false); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case m := <-got:
		if string(m.Payload) != "halo" || m.QoS != 1 {
			t.Fatalf("got %q at QoS %d", m.Payload, m.QoS)
		}
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}
