package demo

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tekenid/teken/gateway"
)

// demoGateway is the gateway beside the demo's terminal, as a PHP or Java
// letter system would use it: letters submitted with curl, each change
// brought back by a signed webhook to a receiver the demo runs, and the
// signed PDF fetched from the API when the webhook says signed.
type demoGateway struct {
	g       *gateway.Gateway
	url     string
	key     string
	hookURL string
	stop    func()
}

func startGateway(ctx context.Context, dir, brokerURL, keyFile, officialCert string, out io.Writer, saved string) (*demoGateway, error) {
	key, hash := gateway.NewAPIKey()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails (Go 1.24)
	secret = []byte(hex.EncodeToString(secret))
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		return nil, err
	}
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	dg := &demoGateway{key: key, hookURL: "http://" + hookLn.Addr().String() + "/teken"}

	cfg := gateway.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Store.Path = filepath.Join(dir, "gateway.db")
	cfg.Broker.URLs = []string{brokerURL}
	cfg.Broker.ClientID = "teken-demo-gateway"
	cfg.DispatcherKeyFile = keyFile
	cfg.SignerCertFiles = []string{officialCert}
	cfg.Clients = []gateway.ClientConfig{{ID: "demo", KeySHA256: []string{hash}, Terminals: []string{terminalID},
		Webhooks: []gateway.EndpointConfig{{Name: "demo", URL: dg.hookURL, SecretFile: secretFile}}}}
	logFile, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		hookLn.Close()
		return nil, err
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(gateway.LogHandler(logFile, "info"))})
	if err != nil {
		hookLn.Close()
		logFile.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	dg.g, dg.url = g, "http://"+g.Addr()

	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(gctx); err != nil {
			fmt.Fprintln(out, "gateway:", err)
		}
	}()
	hooks := &http.Server{Handler: dg.receiver(secret, out, saved), ReadHeaderTimeout: 10 * time.Second}
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		_ = hooks.Serve(hookLn)
	}()
	dg.stop = func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = hooks.Shutdown(sctx)
		<-hooksDone
		logFile.Close()
	}
	return dg, nil
}

// receiver is the letter system's webhook endpoint: it checks each
// delivery's signature as docs/GATEWAY.md tells integrators to, prints
// the change, and fetches a signed letter's PDFs.
func (dg *demoGateway) receiver(secret []byte, out io.Writer, saved string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		var ev gateway.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		// The header carries the time the gateway signed this try.
		sig := r.Header.Get(gateway.SignatureHeader)
		t, ok := signatureTime(sig)
		if !ok || !hmac.Equal([]byte(sig), []byte(gateway.Sign(secret, body, t))) || time.Since(t).Abs() > 5*time.Minute {
			fmt.Fprintln(out, "webhook: a delivery with a bad signature, refused")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		fmt.Fprintf(out, "webhook (signature verified): letter %s is %s\n", ev.Letter.ID, ev.Letter.State)
		if ev.Letter.State == "signed" {
			go dg.fetchSigned(context.Background(), ev.Letter.ID, out, saved)
		}
	})
}

func signatureTime(header string) (time.Time, bool) {
	var unix int64
	if _, err := fmt.Sscanf(header, "t=%d,", &unix); err != nil {
		return time.Time{}, false
	}
	return time.Unix(unix, 0), true
}

// fetchSigned downloads every signed document of a letter into saved.
func (dg *demoGateway) fetchSigned(ctx context.Context, id string, out io.Writer, saved string) {
	var l gateway.LetterView
	if err := dg.get(ctx, "/v1/letters/"+id, func(r io.Reader) error { return json.NewDecoder(r).Decode(&l) }); err != nil {
		fmt.Fprintln(out, "gateway:", err)
		return
	}
	for _, d := range l.Documents {
		if d.Signed == "" {
			continue
		}
		ext := ".p7s"
		if d.Format == "pades" {
			ext = ".pdf"
		}
		path := filepath.Join(saved, "gateway-"+id+"-"+d.ID+ext)
		err := dg.get(ctx, d.Signed, func(r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return os.WriteFile(path, b, 0o644)
		})
		if err != nil {
			fmt.Fprintln(out, "gateway:", err)
			continue
		}
		fmt.Fprintf(out, "signed by way of the gateway: %s\n", path)
	}
}

func (dg *demoGateway) get(ctx context.Context, path string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dg.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+dg.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("GET %s: %s %s", path, res.Status, b)
	}
	return read(res.Body)
}
