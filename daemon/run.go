package daemon

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/version"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// Options are what Run takes besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ready, when set, is called with the kiosk and metrics addresses once
	// tekend is ready (tests use it with port 0 listeners).
	Ready func(kioskAddr, metricsAddr string)
}

// Daemon is one running tekend.
type Daemon struct {
	cfg         Config
	log         *slog.Logger
	now         func() time.Time
	store       *queue.Store
	tokens      *device.Tokens
	verifier    *api.Verifier
	term        atomic.Pointer[transport.Terminal]
	kiosk       *kiosk.Server
	flow        *flow
	outbox      *outbox
	metrics     *metrics
	notify      notifier
	signerRoots *x509.CertPool
	statusKick  chan struct{}
	rearrive    chan string // a token that arrived while the flow was busy
	lastErr     atomic.Pointer[string]
	certsSeen   certsSeen
	location    *time.Location // of dates in visible signature blocks

	// signCtx outlives the request of an in-flight batch; shutdown cancels
	// it once the grace period is over.
	signCtx    context.Context
	signCancel context.CancelFunc
	signing    sync.WaitGroup
}

// StorePath is the bbolt file inside the data directory.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "tekend.db") }

// Run runs tekend until ctx ends (SIGTERM), then shuts down within the
// configured grace period.
func Run(ctx context.Context, cfg Config, opts Options) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	d := &Daemon{cfg: cfg, log: opts.Logger, now: opts.Now, metrics: newMetrics(),
		statusKick: make(chan struct{}, 1), rearrive: make(chan string, 1)}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.notify = notifier{log: d.log}
	d.notify.Status("starting")
	d.signCtx, d.signCancel = context.WithCancel(context.Background())
	defer d.signCancel()

	if err := d.loadTrust(); err != nil {
		return err
	}
	if d.location, err = time.LoadLocation(cfg.Signing.TimeZone); err != nil {
		return fmt.Errorf("signing.time_zone: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	d.store, err = queue.Open(StorePath(cfg.DataDir), queue.Options{
		Timeout: 2 * time.Second, MaxSize: int(cfg.Store.MaxSizeBytes), Retention: time.Duration(cfg.Store.Retention),
		TerminalID: cfg.TerminalID, Now: d.now, Logger: d.log, ExpiryPayload: d.expiryPayload,
	})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(err, d.store.Close(cctx))
	}()
	d.tokens, err = device.Open(ctx, device.Options{Logger: d.log})
	if err != nil {
		return fmt.Errorf("open tokens: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(err, d.tokens.Close(cctx))
	}()

	d.flow = newFlow(d)
	d.metrics.reg.MustRegister(newStateCollector(d))
	d.outbox = newOutbox(d.store, d.publisher, d.log)
	kioskLn, err := net.Listen("tcp", cfg.Kiosk.Listen)
	if err != nil {
		return fmt.Errorf("kiosk listener: %w", err)
	}
	d.kiosk, err = kiosk.New(kiosk.Options{Addr: kioskLn.Addr().String(), Controller: d.flow, Logger: d.log})
	if err != nil {
		kioskLn.Close()
		return err
	}
	d.flow.publish(ctx)
	metricsLn, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		kioskLn.Close()
		return fmt.Errorf("metrics listener: %w", err)
	}
	servers := []*http.Server{
		{Handler: d.kiosk, ReadHeaderTimeout: 10 * time.Second},
		{Handler: d.metricsHandler(), ReadHeaderTimeout: 10 * time.Second},
	}
	servers[0].RegisterOnShutdown(d.kiosk.Close)

	term, err := d.openTerminal()
	if err != nil {
		kioskLn.Close()
		metricsLn.Close()
		return err
	}
	d.term.Store(term)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := servers[0].Serve(kioskLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("kiosk server on %s: %w", kioskLn.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		// TLS and basic auth for IT's endpoints, in the Prometheus
		// exporter-toolkit web-config format, when configured.
		webConfig := cfg.Metrics.WebConfig
		err := web.Serve(metricsLn, servers[1], &web.FlagConfig{WebConfigFile: &webConfig}, d.log)
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server on %s: %w", metricsLn.Addr(), err)
		}
		return nil
	})
	g.Go(func() error { return d.outbox.run(gctx) })
	g.Go(func() error { return d.mainLoop(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		d.shutdown(servers)
		return nil
	})

	d.log.Info("tekend ready", "version", version.String(), "terminal", cfg.TerminalID,
		"kiosk", kioskLn.Addr().String(), "metrics", metricsLn.Addr().String())
	d.notify.Ready(d.statusLine())
	if opts.Ready != nil {
		opts.Ready(kioskLn.Addr().String(), metricsLn.Addr().String())
	}
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		d.log.Info("tekend stopped")
	}
	return err
}

// shutdown lets an in-flight batch finish within the grace period, then
// cancels it (its job goes back to waiting), and closes the listeners and
// the broker connection, which publishes the offline status.
func (d *Daemon) shutdown(servers []*http.Server) {
	d.notify.Stopping("stopping")
	d.log.Info("shutting down")
	done := make(chan struct{})
	go func() { d.signing.Wait(); close(done) }()
	grace := time.Duration(d.cfg.Signing.ShutdownGrace)
	select {
	case <-done:
	case <-time.After(grace):
		d.log.Warn("abandoning the signing in flight", "grace", grace)
		d.signCancel()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
	if t := d.term.Load(); t != nil {
		if err := t.Close(ctx); err != nil {
			d.log.Warn("close broker connection", "err", err)
		}
	}
}

// signingContext ties a batch to the request and to shutdown's grace.
func (d *Daemon) signingContext(req context.Context) (context.Context, context.CancelFunc) {
	d.signing.Add(1)
	ctx, cancel := context.WithCancel(d.signCtx)
	stop := context.AfterFunc(req, cancel)
	return ctx, func() {
		stop()
		cancel()
		d.signing.Done()
	}
}

// mainLoop turns token events into page states, publishes the status, and
// pets the systemd watchdog only after the store has answered.
func (d *Daemon) mainLoop(ctx context.Context) error {
	period := watchdogPeriod()
	var watchdog <-chan time.Time
	if period > 0 {
		t := time.NewTicker(period)
		defer t.Stop()
		watchdog = t.C
	}
	minInterval := time.Duration(d.cfg.Status.MinInterval)
	statusTick := time.NewTicker(minInterval)
	defer statusTick.Stop()
	pending := true
	var lastStatus string
	events := d.tokens.Events()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("token events ended")
			}
			d.flow.presence(ctx, ev)
		case reader := <-d.rearrive:
			d.flow.presence(ctx, device.Event{Kind: device.Arrived, Reader: reader, At: d.now()})
		case <-d.statusKick:
			pending = true
		case <-statusTick.C:
			// A part can fail without any event (pcscd dies, the disk
			// fills): the status is recomputed every tick and published
			// when anything in it changed.
			lastStatus = d.publishStatus(ctx, lastStatus, pending)
			pending = false
		case <-watchdog:
			sctx, cancel := context.WithTimeout(ctx, period)
			_, err := d.store.Stats(sctx)
			cancel()
			if err != nil {
				d.log.Error("store does not answer; not petting the watchdog", "err", err)
				continue
			}
			d.notify.Watchdog()
		}
	}
}

// statusChanged asks the main loop to publish the status at its next tick.
func (d *Daemon) statusChanged() {
	select {
	case d.statusKick <- struct{}{}:
	default:
	}
}

// publishStatus tells systemd and the broker what the terminal is doing,
// when it changed since last (or force), and returns what it said.
func (d *Daemon) publishStatus(ctx context.Context, last string, force bool) string {
	st := d.status()
	line := statusLine(st)
	if line == last && !force {
		return last
	}
	if line != last {
		d.notify.Status(line)
	}
	if t := d.term.Load(); t != nil && t.Connected() {
		if err := t.PublishStatus(ctx, st); err != nil {
			d.log.Warn("publish status", "err", err)
		}
	}
	return line
}

// status is the terminal's health for the retained status message: the
// same facts as /readyz and the metrics. LastError names a part that is
// down now, else the last error seen.
func (d *Daemon) status() api.Status {
	st := api.Status{V: api.Version, Terminal: d.cfg.TerminalID, Version: version.String(), Since: d.now()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s, err := d.store.Stats(ctx); err == nil {
		st.JobsWaiting = s.Jobs[queue.Ready] + s.Jobs[queue.Received] + s.Jobs[queue.Signing]
		st.ResultsUndelivered = s.Undelivered
	}
	if d.flow != nil {
		st.TokenPresent, _, _ = d.flow.tokenFacts()
	}
	if e := d.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	for _, p := range d.readiness(ctx) {
		// The broker's own state travels as online/offline.
		if !strings.HasPrefix(p, "broker:") {
			st.LastError = p
			break
		}
	}
	return st
}

func statusLine(st api.Status) string {
	token := "no token"
	if st.TokenPresent {
		token = "token present"
	}
	line := fmt.Sprintf("%d letters waiting, %d results undelivered, %s", st.JobsWaiting, st.ResultsUndelivered, token)
	if st.LastError != "" {
		line += "; " + st.LastError
	}
	return line
}

func (d *Daemon) statusLine() string { return statusLine(d.status()) }

func (d *Daemon) setLastError(msg string) {
	d.lastErr.Store(&msg)
	d.statusChanged()
}

func (d *Daemon) publisher() resultPublisher {
	if t := d.term.Load(); t != nil {
		return t
	}
	return nil
}

// expiryPayload encodes the result of a job the store's sweeper expired.
func (d *Daemon) expiryPayload(j queue.Job) []byte {
	b, err := api.Encode(d.result(j, api.OutcomeExpired, api.ReasonExpired, ""))
	if err != nil {
		d.log.Error("encode expiry result", "job", j.ID, "err", err)
	}
	d.outbox.notify()
	return b
}

func (d *Daemon) openTerminal() (*transport.Terminal, error) {
	b := d.cfg.Broker
	conn := transport.Connection{
		Brokers: b.URLs, ClientID: d.cfg.ClientID(), Username: b.Username,
		MaxReconnectInterval: time.Duration(b.MaxReconnectInterval), Logger: d.log,
	}
	if b.PasswordFile != "" {
		pw, err := os.ReadFile(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("broker password: %w", err)
		}
		conn.Password = strings.TrimSpace(string(pw))
	}
	if b.CAFile != "" {
		tc, err := transport.TLSConfig(b.CAFile, b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker TLS: %w", err)
		}
		conn.TLS = tc
	}
	t, err := transport.OpenTerminal(transport.TerminalConfig{
		Connection: conn, Root: b.TopicRoot, TerminalID: d.cfg.TerminalID,
		Handler: d, Status: d.status,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return t, nil
}

// loadTrust reads the dispatcher keys and the signer CAs.
func (d *Daemon) loadTrust() error {
	var keys []crypto.PublicKey
	for _, f := range d.cfg.Dispatcher.KeyFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("dispatcher.key_files: %w", err)
		}
		pubs, err := api.ParsePublicKeysPEM(raw)
		if err != nil {
			return fmt.Errorf("dispatcher.key_files: %s: %w", f, err)
		}
		keys = append(keys, pubs...)
	}
	set, err := api.KeySet(keys...)
	if err != nil {
		return fmt.Errorf("dispatcher.key_files: %w", err)
	}
	d.verifier = &api.Verifier{
		Keys: set, Terminal: d.cfg.TerminalID, Now: func() time.Time { return d.now() },
		Skew: time.Duration(d.cfg.Dispatcher.ClockSkew), MaxContentBytes: d.cfg.Dispatcher.MaxJobBytes,
		AllowHashOnly: d.cfg.Dispatcher.AllowHashOnly,
	}
	if len(d.cfg.Signing.SignerCAFiles) > 0 {
		d.signerRoots = x509.NewCertPool()
		for _, f := range d.cfg.Signing.SignerCAFiles {
			raw, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("signing.signer_ca_files: %w", err)
			}
			if !d.signerRoots.AppendCertsFromPEM(raw) {
				return fmt.Errorf("signing.signer_ca_files: %s holds no PEM certificate", f)
			}
		}
	}
	return nil
}
