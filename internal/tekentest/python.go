package tekentest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/testenv"
)

// Rig is a running tekend with its broker and pcscd for a central system
// that is not the Go library — a program in Python, PHP or Java under
// test. Unlike Start it runs no central side of its own, which would take
// and acknowledge every result before the program under test could, and
// it writes the dispatcher private keys the terminal trusts to files, one
// of each algorithm, for the program to sign with.
type Rig struct {
	t          testing.TB
	ID         string // the terminal id
	PCSCD      *testenv.PCSCD
	Broker     *testenv.Mosquitto
	Logs       *SyncBuffer // tekend's log
	Wire       *SyncBuffer // every message seen on the broker
	DataDir    string
	KioskURL   string
	MetricsURL string
	// KeyFiles are PKCS#8 PEM dispatcher private keys the terminal
	// trusts, by JWS algorithm (api.AlgES256, api.AlgEdDSA).
	KeyFiles map[string]string
	Stop     func() // stops tekend; safe to call again
}

// StartRig runs a terminal with its own pcscd, broker and a trusted
// dispatcher key of each algorithm; ca, when not nil, is the only CA its
// signers may chain to. adjust changes the configuration before tekend
// starts.
func StartRig(t testing.TB, ca *SignerCA, adjust ...func(*daemon.Config)) *Rig {
	t.Helper()
	r := &Rig{t: t, ID: "kendari-setda-01", Logs: &SyncBuffer{}, Wire: &SyncBuffer{}, KeyFiles: map[string]string{}}
	r.PCSCD = testenv.StartPCSCD(t)
	r.Broker = testenv.StartMosquitto(t)
	dir := t.TempDir()
	r.DataDir = filepath.Join(dir, "data")
	var trusted []string
	for _, alg := range []string{api.AlgES256, api.AlgEdDSA} {
		key, err := api.GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := api.MarshalPrivateKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := api.MarshalPublicKeyPEM(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ToLower(alg)
		r.KeyFiles[alg] = filepath.Join(dir, name+".pem")
		trusted = append(trusted, filepath.Join(dir, name+".pub.pem"))
		if err := os.WriteFile(r.KeyFiles[alg], priv, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(trusted[len(trusted)-1], pub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := daemon.DefaultConfig()
	cfg.TerminalID = r.ID
	cfg.Token.RefuseDefaultPIN = false // the software tokens keep the factory PIN 123456
	cfg.DataDir = r.DataDir
	cfg.Broker.URLs = []string{r.Broker.URL}
	cfg.Broker.MaxReconnectInterval = daemon.Duration(time.Second)
	cfg.Dispatcher.KeyFiles = trusted
	cfg.Kiosk.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Status.MinInterval = daemon.Duration(time.Second)
	if ca != nil {
		cfg.Signing.SignerCAFiles = []string{ca.PEMPath}
	}
	for _, f := range adjust {
		f(&cfg)
	}
	r.KioskURL, r.MetricsURL, r.Stop = RunTekend(t, cfg, r.Logs)
	tm := &Terminal{t: t, Broker: r.Broker, Wire: r.Wire}
	tm.tapWire()
	return r
}

// Kiosk opens the terminal's kiosk page.
func (r *Rig) Kiosk() *Kiosk { return OpenKiosk(r.t, r.KioskURL) }

// Gauge reads one unlabelled metric of the terminal's /metrics now, such as
// teken_results_undelivered.
func (r *Rig) Gauge(name string) (float64, error) {
	res, err := http.Get(r.MetricsURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return gauge(res.Body, name)
}

func gauge(body io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no metric %s", name)
}
