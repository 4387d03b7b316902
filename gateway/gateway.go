// Package gateway is the central side as a service, for letter systems
// that do not speak MQTT: an HTTP API to submit letters, follow them and
// fetch what was signed, webhooks that bring each change to the letter
// system, and, towards the terminals, the MQTT contract through
// transport.Dispatcher, with every letter kept in a store (gateway/store)
// before anything is acknowledged on either side. docs/GATEWAY.md is the
// integrator's guide; gateway/openapi.yaml describes the API.
package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/boltstore"
	"github.com/tekenid/teken/transport"
)

// Options are what a caller brings besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Store replaces the one the configuration names (tests, and the
	// PostgreSQL store, which cmd/tekengw opens).
	Store store.Store
	// HTTPClient posts the webhooks; a client with a timeout per attempt
	// when nil.
	HTTPClient *http.Client
	// Ready is told the API's address once it listens; Status gets a line
	// for systemd whenever the gateway's state changes.
	Ready func(addr string)
}

// Gateway is one gateway instance.
type Gateway struct {
	cfg         Config
	log         *slog.Logger
	store       store.Store
	ownStore    bool
	signer      *api.Signer
	disp        *transport.Dispatcher
	keys        keyring
	clients     map[string]*client
	signers     map[string]signer
	roots       *x509.CertPool // signer_ca_files, for validation reports
	fleet       fleet
	feed        notifier
	metrics     *metrics
	http        *http.Client
	kick        chan struct{}
	resync      chan struct{} // the broker session was new: ask the terminals
	maxEnvelope int
	ln          net.Listener
	srv         *http.Server
	ready       func(string)
}

// New builds a gateway from its configuration: keys, clients, the store
// and the listener. Run starts it.
func New(cfg Config, o Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: o.Logger, http: o.HTTPClient, kick: make(chan struct{}, 1), resync: make(chan struct{}, 1), ready: o.Ready,
		clients: map[string]*client{}, keys: keyring{byHash: map[string]*client{}}}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.http == nil {
		g.http = &http.Client{Timeout: cfg.Webhook.Timeout.Duration,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	keyPEM, err := os.ReadFile(cfg.DispatcherKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dispatcher key: %w", err)
	}
	key, err := api.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("dispatcher key %s: %w", cfg.DispatcherKeyFile, err)
	}
	if g.signer, err = api.NewSigner(key); err != nil {
		return nil, fmt.Errorf("dispatcher key %s: %w", cfg.DispatcherKeyFile, err)
	}
	if g.signers, err = loadSigners(cfg.SignerCertFiles); err != nil {
		return nil, err
	}
	g.roots = x509.NewCertPool()
	for _, f := range cfg.SignerCAFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("signer CAs: %w", err)
		}
		if !g.roots.AppendCertsFromPEM(raw) {
			return nil, fmt.Errorf("signer CAs: %s holds no certificate", f)
		}
	}
	for _, cc := range cfg.Clients {
		cl := &client{id: cc.ID}
		for _, t := range cc.Terminals {
			if grp, ok := strings.CutPrefix(t, "@"); ok {
				cl.terminals = append(cl.terminals, cfg.Groups[grp]...)
			} else {
				cl.terminals = append(cl.terminals, t)
			}
		}
		for _, ep := range cc.Webhooks {
			secret, err := os.ReadFile(ep.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("client %s webhook %s: %w", cc.ID, ep.Name, err)
			}
			secret = []byte(strings.TrimSpace(string(secret)))
			if len(secret) < 16 {
				return nil, fmt.Errorf("client %s webhook %s: the secret in %s is shorter than 16 bytes", cc.ID, ep.Name, ep.SecretFile)
			}
			cl.hooks = append(cl.hooks, endpoint{name: ep.Name, url: ep.URL, secret: secret})
		}
		g.clients[cc.ID] = cl
		for _, h := range cc.KeySHA256 {
			g.keys.byHash[h] = cl
		}
	}
	hooks := func(clientID string) []string {
		cl := g.clients[clientID]
		if cl == nil {
			return nil
		}
		names := make([]string, 0, len(cl.hooks))
		for _, ep := range cl.hooks {
			names = append(names, ep.name)
		}
		return names
	}
	g.store = o.Store
	if g.store == nil {
		if cfg.Store.Kind != "bolt" {
			return nil, fmt.Errorf("store.kind %s: the caller opens it", cfg.Store.Kind)
		}
		if err := os.MkdirAll(filepath.Dir(cfg.Store.Path), 0o700); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		if g.store, err = boltstore.Open(cfg.Store.Path, boltstore.Options{Hooks: hooks}); err != nil {
			return nil, err
		}
		g.ownStore = true
	}
	g.metrics = newMetrics(g)
	// The envelope must fit the broker's limit (docs/PROTOCOL.md asks
	// for api.MaxResultBytes).
	g.maxEnvelope = api.MaxResultBytes
	if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		g.closeStore()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	g.srv = &http.Server{Handler: g.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return g, nil
}

// Hooks returns the webhook endpoint names of each client, for a store
// the caller opens (store.Hooks).
func (cfg Config) Hooks() store.Hooks {
	byClient := map[string][]string{}
	for _, cc := range cfg.Clients {
		for _, ep := range cc.Webhooks {
			byClient[cc.ID] = append(byClient[cc.ID], ep.Name)
		}
	}
	return func(client string) []string { return byClient[client] }
}

// Addr is the API's address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

func (g *Gateway) closeStore() {
	if g.ownStore {
		if err := g.store.Close(); err != nil {
			g.log.Error("close the store", "err", err)
		}
	}
}

// Run serves until ctx ends, then stops: the API first (requests under
// way finish), then the workers and the broker connection, the store
// last.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.closeStore()
	var err error
	g.disp, err = transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: transport.Connection{Brokers: g.cfg.Broker.URLs, ClientID: g.cfg.Broker.ClientID,
			Username: g.cfg.Broker.Username, Password: g.brokerPassword(), Logger: g.log},
		Root: g.cfg.Broker.TopicRoot, Signer: g.signer, SharedGroup: g.cfg.Broker.SharedGroup,
		Jobs: jobsOf{g.store}, Seen: resultsOf{g.store},
		OnResult: g.onResult, OnReceipt: g.onReceipt,
		OnStatus: func(_ context.Context, s *api.Status) { g.fleet.update(s, time.Now().UTC()) },
		OnConnect: func(_ context.Context, sessionPresent bool) {
			if !sessionPresent {
				select {
				case g.resync <- struct{}{}:
				default:
				}
			}
		},
		OnResend: func(terminal string, n int) {
			g.log.Info("letters published again for a terminal's sync", "terminal", terminal, "letters", n)
		},
	})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		if err := g.srv.Serve(g.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API on %s: %w", g.ln.Addr(), err)
		}
		return nil
	})
	grp.Go(func() error { return g.publishQueued(gctx) })
	grp.Go(func() error { return g.deliverWebhooks(gctx) })
	grp.Go(func() error { return g.requestSyncs(gctx) })
	grp.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.srv.Shutdown(sctx); err != nil {
			g.log.Warn("API shutdown", "err", err)
		}
		return nil
	})
	g.log.Info("tekengw ready", "api", g.Addr(), "clients", len(g.clients), "brokers", strings.Join(g.cfg.Broker.URLs, ","))
	if g.ready != nil {
		g.ready(g.Addr())
	}
	err = grp.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cerr := g.disp.Close(cctx); cerr != nil {
		g.log.Warn("close the broker connection", "err", cerr)
	}
	return err
}

func (g *Gateway) brokerPassword() string {
	if g.cfg.Broker.PasswordFile == "" {
		return ""
	}
	b, err := os.ReadFile(g.cfg.Broker.PasswordFile)
	if err != nil {
		g.log.Error("broker password", "err", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}
