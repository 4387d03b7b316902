// Package demo runs a whole signing terminal on one machine for `make demo`:
// a private broker and pcscd, a software token for a sample official, tekend,
// a central side that dispatches three sample letters and collects the
// results, and the gateway with a webhook receiver, for letters submitted
// over HTTP as a letter system does. Every result is checked against the document of its own job,
// whoever dispatched it: the demo books each job it sees on its way to the
// terminal (book.go) and checks each result as `tekenctl verify` does
// (check.go).
package demo

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/internal/sandbox"
	"github.com/tekenid/teken/transport"
)

// Options configure Run.
type Options struct {
	// Tekend is the tekend binary to run.
	Tekend string
	// Dir keeps the demo's state; empty means a temporary directory that
	// is removed at the end.
	Dir string
	Out io.Writer
	// In takes the operator's keys: Enter taps or removes the token.
	In io.Reader
}

// sampleOfficial holds the demo token.
var sampleOfficial = pivsim.Official{Name: "Dr. Siti Rahmawati, M.Si.", NIP: "198703152010012003"}

const terminalID = "demo-setda-01"

// Run runs the demo until ctx ends, then stops everything it started.
func Run(ctx context.Context, opts Options) (err error) {
	out := opts.Out
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "teken-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	sub := func(name string) string {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(p, 0o755)
		return p
	}
	fmt.Fprintln(out, "Teken demo — starting a broker, pcscd, a software token and tekend …")

	pcscd, err := sandbox.StartPCSCD(sandbox.PCSCDOptions{RunDir: sub("pcscd-run"), Dir: sub("pcscd")})
	if err != nil {
		return fmt.Errorf("pcscd: %w (the demo runs as root, see README)", err)
	}
	defer pcscd.Stop()
	broker, err := sandbox.StartMosquitto(sandbox.MosquittoOptions{Dir: sub("broker")})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer broker.Stop()

	token, err := pivsim.ProvisionDemo(sub("token"), sampleOfficial)
	if err != nil {
		return fmt.Errorf("software token: %w", err)
	}
	defer token.Card.Close()

	key, keyFile, pubFile, err := dispatcherKey(sub("central"))
	if err != nil {
		return err
	}
	kioskPort, err := sandbox.FreePorts(1)
	if err != nil {
		return err
	}
	metricsPort, err := sandbox.FreePorts(1)
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "tekend.toml")
	if err := os.WriteFile(conf, []byte(tekendConfig(broker.URL, pubFile, token.CACertPath, sub("data"), kioskPort, metricsPort)), 0o644); err != nil {
		return err
	}
	stopTekend, err := startTekend(ctx, opts.Tekend, conf, pcscd.Socket, filepath.Join(dir, "tekend.log"), metricsPort)
	if err != nil {
		return err
	}
	defer stopTekend()

	signer, err := api.NewSigner(key)
	if err != nil {
		return err
	}
	results := make(chan *api.Result, 16)
	central, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: []string{broker.URL}, ClientID: "teken-demo-central"},
		Signer:     signer,
		OnResult: func(_ context.Context, r *api.Result) error {
			results <- r
			return nil
		},
	})
	if err != nil {
		return err
	}
	defer central.Close(context.Background())
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = central.WaitConnected(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("central side: %w", err)
	}
	// Every job on its way to the terminal is booked, the demo's own and
	// those `tekenctl dispatch` sends with the key printed below, so each
	// result is checked against the document of its own job.
	jobs := newBook()
	watch, err := watchJobs(ctx, broker.URL, key.Public(), jobs)
	if err != nil {
		return err
	}
	defer watch.Close(context.Background())
	now := time.Now().UTC().Truncate(time.Second)
	for i, l := range sampleLetters {
		j := &api.Job{
			V: api.Version, JobID: api.NewJobID(), Terminal: terminalID,
			IssuedAt: now, ExpiresAt: now.Add(7 * 24 * time.Hour),
			Signer: api.Signatory{CertSHA256: token.CertSHA256, Name: sampleOfficial.Name, NIP: sampleOfficial.NIP},
			Title:  l.Title, Number: l.Number, Sender: l.Sender,
			Documents: []api.Document{l.document(i)},
		}
		jobs.put(j)
		if err := central.Publish(ctx, j); err != nil {
			return fmt.Errorf("dispatch sample letter: %w", err)
		}
	}
	roots, err := certPool(token.CACertPath)
	if err != nil {
		return err
	}
	trust := ctl.Trust{Roots: roots}
	saved := sub("results")

	gw, err := startGateway(ctx, sub("gateway"), broker.URL, keyFile, token.CertPath, out, saved)
	if err != nil {
		return err
	}
	defer gw.stop()

	kioskURL := fmt.Sprintf("http://127.0.0.1:%d/", kioskPort)
	fmt.Fprintf(out, `
Ready. Three letters are waiting for %s

  Kiosk page:   %s   (open it in Chromium: chromium --kiosk %s)
  PIN:          %s
  Token:        press Enter here to tap the token on the reader; Enter again removes it
  Metrics:      http://127.0.0.1:%d/metrics   (/healthz, /readyz)
  tekend log:   %s

Dispatch more and watch results with tekenctl; every result is checked
here against the document of its job, and saved in %s:
  export TEKEN_BROKER=%s TEKEN_DISPATCHER_KEY=%s
  bin/tekenctl dispatch --terminal %s --signer %s --title "Surat Uji" --number "000/1/DEMO" FILE.pdf
  bin/tekenctl dispatch --terminal %s --signer %s --format pades \
      --page 1 --rect 340,40,220,80 --verify-url https://tte.example.go.id/v/uji FILE.pdf
  bin/tekenctl results --follow --out ./signed
  bin/tekenctl verify --ca %s ./signed/*.pdf

A letter system submits through the gateway (docs/GATEWAY.md) instead;
its webhooks come back here, and the signed PDF is saved beside the others:
  Gateway API:  %s   (API key below; the API is described at %s/v1/openapi.yaml)
  curl -H "Authorization: Bearer %s" \
      -F 'letter={"terminal":"%s","signer":{"nip":"%s"},"title":"Surat Uji","number":"000/2/DEMO","sender":"Dinas Uji","documents":[{"id":"surat","file":"surat","format":"pades","visible":{"page":1}}]}' \
      -F surat=@FILE.pdf %s/v1/letters

Ctrl-C stops everything.
`, sampleOfficial.Name, kioskURL, kioskURL, pivsim.DefaultPIN, metricsPort, filepath.Join(dir, "tekend.log"),
		saved, broker.URL, keyFile, terminalID, token.CertPath, terminalID, token.CertPath, token.CACertPath,
		gw.url, gw.url, gw.key, terminalID, sampleOfficial.NIP, gw.url)

	go tapOnEnter(ctx, opts.In, out, token.Card, pcscd.VPCDAddr(0))
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nStopping …")
			return nil
		case r := <-results:
			printResult(ctx, out, r, jobs, trust, saved)
		}
	}
}

func tapOnEnter(ctx context.Context, in io.Reader, out io.Writer, card *pivsim.Card, addr string) {
	if in == nil {
		return
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if ctx.Err() != nil {
			return
		}
		if card.Present() {
			if err := card.Remove(); err != nil {
				fmt.Fprintln(out, "remove token:", err)
			}
			fmt.Fprintln(out, "Token removed.")
			continue
		}
		if err := card.Insert(ctx, addr); err != nil {
			fmt.Fprintln(out, "tap token:", err)
			continue
		}
		fmt.Fprintln(out, "Token on the reader (Enter removes it).")
	}
}

// dispatcherKey makes the central side's signing key, and writes it and its
// public half (the terminal's trust) as PEM.
func dispatcherKey(dir string) (key crypto.Signer, keyFile, pubFile string, err error) {
	key, err = api.GenerateKey("ES256")
	if err != nil {
		return nil, "", "", err
	}
	priv, err := api.MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, "", "", err
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return nil, "", "", err
	}
	keyFile, pubFile = filepath.Join(dir, "dispatcher.key"), filepath.Join(dir, "dispatcher.pub")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		return nil, "", "", err
	}
	return key, keyFile, pubFile, nil
}

func certPool(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return p, nil
}

func tekendConfig(brokerURL, pubFile, signerCA, dataDir string, kioskPort, metricsPort int) string {
	return fmt.Sprintf(`terminal_id = %q
data_dir = %q

[broker]
urls = [%q]
max_reconnect_interval = "2s"

[dispatcher]
key_files = [%q]

[token]
# The virtual tokens keep the factory PIN 123456.
refuse_default_pin = false

[kiosk]
listen = "127.0.0.1:%d"
language = "id"

[metrics]
listen = "127.0.0.1:%d"

[signing]
signer_ca_files = [%q]

[status]
min_interval = "2s"
`, terminalID, dataDir, brokerURL, pubFile, kioskPort, metricsPort, signerCA)
}

// startTekend runs tekend as its own process, pointed at the private pcscd,
// and waits until /readyz says ready.
func startTekend(ctx context.Context, bin, conf, pcscSocket, logPath string, metricsPort int) (stop func(), err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", conf)
	cmd.Env = append(os.Environ(), sandbox.SocketEnv+"="+pcscSocket)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A demo that dies takes its tekend with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	waited, err := sandbox.StartHeld(cmd)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start tekend: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- <-waited; logFile.Close() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", metricsPort)
	err = sandbox.WaitFor(ctx, 30*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			return sandbox.Permanent(fmt.Errorf("tekend exited: %v (log: %s)", err, logPath))
		default:
		}
		res, err := http.Get(ready)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(strings.TrimSpace(string(body)))
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("tekend not ready: %w", err)
	}
	return stop, nil
}
