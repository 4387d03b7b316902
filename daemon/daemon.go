package daemon

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"

	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/version"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/transport"
)

// Options are what Open takes besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ready, when set, is called with the kiosk and metrics addresses once
	// tekend is ready (tests use it with port 0 listeners).
	Ready func(kioskAddr, metricsAddr string)
	// ConfigPath is the file a reload reads again (cmd/tekend's -config).
	ConfigPath string
	// Reload, when set, asks for a reload with each value (SIGHUP, from
	// signal.Notify): see reload.go for what it applies.
	Reload <-chan os.Signal
	// LogLevel, when set, is the level Logger logs at, and a reload sets
	// it to the new log_level; without it log_level needs a restart.
	LogLevel *slog.LevelVar
	// AdminSocket is where `tekend backup` reaches this tekend
	// (admin.DefaultSocket for the service); empty: no admin socket.
	AdminSocket string
}

// Daemon is one tekend: Open starts its parts, Run serves until its context
// ends, Close stops every part Open started, in reverse order, once.
type Daemon struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	notify  notifier
	metrics *metrics

	store  *queue.Store
	tokens *device.Tokens
	// term is set once the session is open; the status is read through
	// it from the session's own goroutines, hence atomic.
	term    atomic.Pointer[transport.Terminal]
	kiosk   *kiosk.Server
	flow    *flow
	intake  *intake
	outbox  *outbox
	batches *batches
	seen    certsSeen
	admin   *admin.Server // nil without an admin socket

	// trust and tsa are what a reload swaps (reload.go); applied is the
	// configuration in force, cfg with the reloadable fields of the last
	// reload, and it and refused belong to the reload goroutine.
	trust *liveTrust
	ltv   atomic.Pointer[ltvParts]
	// signer makes and augments signatures for the flow and for the held
	// results' loop (held.go).
	signer *docSigner
	// revocation is the checker of the whole run (revocation.* needs a
	// restart); nil when revocation.check is off.
	revocation *revocation.Checker
	applied    Config
	refused    *string // the status's last error a refused reload set

	kioskLn, metricsLn net.Listener
	kioskSrv, metrSrv  *http.Server

	statusKick chan struct{}
	statusOut  latestStatus // from the main loop to sendStatus
	rearrive   chan string  // a token that arrived while the flow was busy
	lastErr    atomic.Pointer[string]
	readers    atomic.Int64 // readers pcscd listed at the last probe; -1 when it did not answer

	closers   []func(context.Context) error // in the order opened
	running   atomic.Bool                   // Run was called
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// StorePath is the bbolt file inside the data directory.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "tekend.db") }

// Run opens tekend, serves until ctx ends (SIGTERM), then shuts down within
// the configured grace period and closes everything it opened.
func Run(ctx context.Context, cfg Config, opts Options) error {
	d, err := Open(ctx, cfg, opts)
	if err != nil {
		return err
	}
	err = d.Run(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, d.Close(cctx))
}

// Open validates the configuration and opens every part: trust, the store,
// the tokens, the kiosk and metrics listeners and the broker session, which
// connects in the background. On error, what was opened is closed again.
func Open(ctx context.Context, cfg Config, opts Options) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Logger, now: opts.Now, metrics: newMetrics(),
		batches: newBatches(), statusKick: make(chan struct{}, 1), statusOut: newLatestStatus(), rearrive: make(chan string, 1)}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.readers.Store(-1) // not asked yet
	d.notify = notifier{log: d.log}
	d.notify.Status("starting")
	applyMemoryLimit(d.log)
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, d.Close(cctx))
		}
	}()

	tr, err := loadTrust(cfg, d.now)
	if err != nil {
		return nil, err
	}
	d.trust, d.applied = newLiveTrust(tr), cfg
	if err := loadWebConfig(cfg.Metrics.WebConfig); err != nil {
		return nil, err
	}
	location, err := time.LoadLocation(cfg.Signing.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("signing.time_zone: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// The outbox exists before the store opens: the store's sweeper may
	// expire a job, and tell the outbox, as soon as it runs.
	d.outbox = newOutbox(nil, d.publisher, d.log)
	d.outbox.initial = time.Duration(cfg.Broker.ResultResendInitial)
	d.outbox.most = time.Duration(cfg.Broker.ResultResendMax)
	comp := &completer{
		results: results{terminal: cfg.TerminalID, now: d.now},
		metrics: d.metrics, log: d.log, statusChanged: d.statusChanged,
		resultStored: func() { d.outbox.notify() },
	}
	d.store, err = queue.Open(StorePath(cfg.DataDir), queue.Options{
		Timeout: 2 * time.Second, MaxSize: int(cfg.Store.MaxSizeBytes), Retention: time.Duration(cfg.Store.Retention),
		TerminalID: cfg.TerminalID, Now: d.now, Logger: d.log, ExpiryPayload: comp.expiryPayload,
		OnExpired: d.jobsExpired, // after the sweep's commit: outbox, metric, page (expiry.go)
		// A replay is refused until the envelope verifier would refuse
		// it as expired, whatever the retention.
		ReplaySkew: time.Duration(cfg.Dispatcher.ClockSkew),
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	d.onClose(d.store.Close)
	comp.store = d.store
	d.outbox.store = d.store
	d.openAdmin()
	d.tokens, err = device.Open(ctx, device.Options{Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("open tokens: %w", err)
	}
	d.onClose(d.tokens.Close)

	pdfLimits := pades.Limits{
		MaxDecompressedBytes: cfg.Signing.PDFMaxDecompressedBytes,
		AllowEmbeddedFiles:   cfg.Signing.PDFAllowEmbeddedFiles,
	}
	d.revocation = loadRevocation(cfg)
	parts, err := d.ltvPartsOf(cfg)
	if err != nil {
		return nil, err
	}
	d.ltv.Store(parts)
	signerCAs := func() (*x509.CertPool, []*x509.Certificate) {
		t := d.trust.load()
		return t.signerRoots, t.signerCAs
	}
	d.signer = &docSigner{
		metrics: d.metrics, log: d.log, location: location, limits: pdfLimits, live: &d.ltv,
		signerCAs: signerCAs, revocationTimeout: time.Duration(cfg.Revocation.Timeout),
	}
	var tap *tapCheck
	if d.revocation != nil {
		tap = &tapCheck{
			checker: d.revocation, require: cfg.Revocation.Check == RevocationRequire, responder: cfg.Revocation.OCSPResponder != "",
			timeout: time.Duration(cfg.Revocation.Timeout), cas: signerCAs, now: d.now, log: d.log,
		}
	}
	d.flow = newFlow(flowDeps{
		store: d.store, tokens: deviceTokens{d.tokens}, envelopes: envelopes{d.trust},
		certs: certPolicy{live: d.trust, now: d.now, log: d.log}, seen: &d.seen,
		tokenSet: tokenPolicy{live: d.trust, attest: deviceTokens{d.tokens}}, tapCheck: tap,
		complete: comp, signer: d.signer, metrics: d.metrics, batches: d.batches,
		now: d.now, log: d.log, lang: cfg.Kiosk.Language, maxBatch: cfg.Signing.MaxBatch,
		statusChanged: d.statusChanged, rearrive: d.tokenBack, setLastError: d.setLastError,
	})
	d.intake = &intake{
		store: d.store, verifier: d.trust, complete: comp, metrics: d.metrics, log: d.log,
		now: d.now, terminal: cfg.TerminalID, jobsChanged: d.flow.jobsChanged,
		statusChanged: d.statusChanged, setLastError: d.setLastError, resendAll: d.outbox.resendAll,
		pdf:               pdfBudget{perDoc: pdfLimits, perJob: cfg.Signing.PDFMaxJobDecompressedBytes},
		allowUnrenderable: cfg.Signing.AllowUnrenderableDocuments,
	}
	d.metrics.reg.MustRegister(newStateCollector(d), newStoreCollector(d.store))
	d.metrics.reg.MustRegister(newBrokerCollector(d))

	if d.kioskLn, err = d.listen(cfg.Kiosk.Listen); err != nil {
		return nil, fmt.Errorf("kiosk listener: %w", err)
	}
	d.kiosk, err = kiosk.New(kiosk.Options{Addr: d.kioskLn.Addr().String(), Controller: d.flow, Logger: d.log})
	if err != nil {
		return nil, err
	}
	d.flow.pages = d.kiosk
	d.flow.publish(ctx)
	if d.metricsLn, err = d.listen(cfg.Metrics.Listen); err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	d.kioskSrv = &http.Server{Handler: d.kiosk, ReadHeaderTimeout: 10 * time.Second}
	d.kioskSrv.RegisterOnShutdown(d.kiosk.Close)
	d.metrSrv = &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 10 * time.Second}

	term, err := d.openTerminal()
	if err != nil {
		return nil, err
	}
	d.term.Store(term)
	d.onClose(func(ctx context.Context) error {
		// A failed offline status is the broker's problem, not a failed
		// shutdown: the last will says offline all the same.
		if err := term.Close(ctx); err != nil {
			d.log.Warn("close broker connection", "err", err)
		}
		return nil
	})
	return d, nil
}

// listen opens a listener that Close closes, whether or not it was served.
func (d *Daemon) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	d.onClose(func(context.Context) error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return ln, nil
}

// onClose registers what Close undoes, in reverse order of opening.
func (d *Daemon) onClose(fn func(context.Context) error) { d.closers = append(d.closers, fn) }

// Run serves the kiosk and IT's endpoints, publishes results and runs the
// main loop until ctx ends or one of them fails; then it stops serving (see
// stop). It tells systemd READY=1 once everything runs.
func (d *Daemon) Run(ctx context.Context) error {
	d.running.Store(true)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := d.kioskSrv.Serve(d.kioskLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("kiosk server on %s: %w", d.kioskLn.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		// TLS and basic auth for IT's endpoints, in the Prometheus
		// exporter-toolkit web-config format, when configured.
		webConfig := d.cfg.Metrics.WebConfig
		err := web.Serve(d.metricsLn, d.metrSrv, &web.FlagConfig{WebConfigFile: &webConfig}, d.log)
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server on %s: %w", d.metricsLn.Addr(), err)
		}
		return nil
	})
	g.Go(func() error { return d.outbox.run(gctx) })
	g.Go(func() error { return d.retryHeld(gctx) })
	g.Go(func() error { return d.mainLoop(gctx) })
	g.Go(func() error { return d.sendStatus(gctx) })
	g.Go(func() error { return d.reloadLoop(gctx) })
	g.Go(func() error { return d.serveAdmin(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		d.stop()
		return nil
	})

	kioskAddr, metricsAddr := d.kioskLn.Addr().String(), d.metricsLn.Addr().String()
	d.log.Info("tekend ready", "version", version.String(), "terminal", d.cfg.TerminalID,
		"kiosk", kioskAddr, "metrics", metricsAddr)
	d.notify.Ready(d.statusLine())
	if d.opts.Ready != nil {
		d.opts.Ready(kioskAddr, metricsAddr)
	}
	err := g.Wait()
	if ctx.Err() != nil && err == nil {
		d.log.Info("tekend stopped")
	}
	return err
}

// stop ends serving, once: it lets an in-flight batch finish within the
// grace period, then cancels it (its job goes back to waiting), and shuts
// the HTTP servers down, which ends open kiosk pages.
func (d *Daemon) stop() {
	d.stopOnce.Do(func() {
		d.notify.Stopping("stopping")
		d.log.Info("shutting down")
		grace := time.Duration(d.cfg.Signing.ShutdownGrace)
		d.batches.drain(grace, func() { d.log.Warn("abandoning the signing in flight", "grace", grace) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []*http.Server{d.kioskSrv, d.metrSrv} {
			if s != nil {
				_ = s.Shutdown(ctx)
			}
		}
	})
}

// Close stops serving if Run did not, then closes every part Open opened,
// newest first: the broker session (which publishes the offline status),
// the listeners, the tokens, the store. It returns the errors joined.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		if d.running.Load() {
			d.stop()
		}
		var errs []error
		for i := len(d.closers) - 1; i >= 0; i-- {
			errs = append(errs, d.closers[i](ctx))
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
