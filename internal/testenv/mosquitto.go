package testenv

import (
	"testing"

	"github.com/tekenid/teken/internal/sandbox"
)

// Mosquitto is a broker of the test's own on a free 127.0.0.1 port.
type Mosquitto struct {
	*sandbox.Mosquitto
	// CA and Client are set for a TLS broker: the CA that issued the
	// broker's certificate and a client certificate it accepts.
	CA     *CA
	Client *KeyPair
}

// MosquittoOptions selects the broker's configuration.
type MosquittoOptions struct {
	// TLS requires TLS with client certificates from a CA the harness makes.
	TLS bool
	// Extra lines are appended to the generated configuration.
	Extra []string
}

// StartMosquitto starts a plain MQTT broker without persistence.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	return StartMosquittoWith(t, MosquittoOptions{})
}

// StartMosquittoWith starts a broker with the given options and stops it when
// the test ends.
func StartMosquittoWith(t testing.TB, opt MosquittoOptions) *Mosquitto {
	t.Helper()
	LookPath(t, "mosquitto")
	m := &Mosquitto{}
	so := sandbox.MosquittoOptions{Dir: t.TempDir(), Extra: opt.Extra}
	if opt.TLS {
		m.CA = NewCA(t, "Teken test broker CA")
		m.Client = m.CA.Client(t, "teken-test-client")
		srv := m.CA.Server(t)
		so.TLS = []string{
			"cafile " + m.CA.CertFile,
			"certfile " + srv.CertFile,
			"keyfile " + srv.KeyFile,
			"require_certificate true",
			"tls_version tlsv1.2",
		}
	}
	b, err := sandbox.StartMosquitto(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	m.Mosquitto = b
	return m
}
