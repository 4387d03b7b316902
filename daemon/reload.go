package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/tekenid/teken/api"
)

// A reload (SIGHUP; systemctl reload tekend) reads the configuration file
// again and applies, while tekend runs, what can change without a restart:
// the fields in reloadable. Every other field keeps the value tekend
// started with, and a change to one is logged as needing a restart. A file
// that tekend run would refuse — one that does not parse or validate, or
// names a key, CA or other file that does not load — is refused as a
// whole: nothing of it applies, and tekend goes on as before.
//
// What a reload changes is read by other goroutines while they work:
// intake verifies envelopes on the transport's worker, the flow checks
// certificates and opens stored jobs on kiosk requests, a batch asks the
// timestamp authority. Each reads an immutable value through an atomic
// pointer (liveTrust, Daemon.tsa), so one envelope is checked under one
// trust, never half of the old and half of the new, and nobody waits for
// a reload, which reads its files on its own goroutine.

// reloadable are the fields a reload applies, by their TOML names.
// withReloadable copies exactly these (TestReloadableFieldsAreTheOnesCopied).
var reloadable = map[string]bool{
	"log_level":               true,
	"dispatcher.key_files":    true,
	"signing.signer_ca_files": true,
	"signing.tsa_url":         true,
	"signing.tsa_timeout":     true,
	// The next document is taken to the level, through the authorities,
	// in force when its card session ends.
	"signing.level":         true,
	"signing.require_level": true,
	"tsa.authority":         true,
	"tsa.policy":            true,
	"tsa.ca_files":          true,
	"tsa.max_skew":          true,
	// The token policy is checked at each tap, so a reload applies it to
	// the next token without touching one that is signing.
	"token.refuse_default_pin":  true,
	"token.require_attestation": true,
	"token.attestation_roots":   true,
}

// ReloadableFields are the configuration fields a reload applies, for the
// documentation and the operator tools.
func ReloadableFields() []string { return slices.Sorted(maps.Keys(reloadable)) }

// withReloadable is running with next's reloadable fields.
func withReloadable(running, next Config) Config {
	c := running
	c.LogLevel = next.LogLevel
	c.Dispatcher.KeyFiles = slices.Clone(next.Dispatcher.KeyFiles)
	c.Signing.SignerCAFiles = slices.Clone(next.Signing.SignerCAFiles)
	c.Signing.TSAURL = next.Signing.TSAURL
	c.Signing.TSATimeout = next.Signing.TSATimeout
	c.Signing.Level = next.Signing.Level
	c.Signing.RequireLevel = next.Signing.RequireLevel
	c.TSA = next.TSA
	c.TSA.Authorities = slices.Clone(next.TSA.Authorities)
	c.TSA.CAFiles = slices.Clone(next.TSA.CAFiles)
	c.Token = next.Token
	c.Token.AttestationRoots = slices.Clone(next.Token.AttestationRoots)
	return c
}

// liveTrust is the trust in force; a reload replaces it whole.
type liveTrust struct{ p atomic.Pointer[trust] }

func newLiveTrust(t trust) *liveTrust {
	l := &liveTrust{}
	l.p.Store(&t)
	return l
}

func (l *liveTrust) load() trust   { return *l.p.Load() }
func (l *liveTrust) store(t trust) { l.p.Store(&t) }

// envelopeVerifier verifies envelopes as they arrive: a fixed
// *api.Verifier, or the liveTrust's in force.
type envelopeVerifier interface {
	VerifyJob(raw []byte) (*api.Job, string, error)
	VerifyCancel(raw []byte) (*api.Cancel, error)
	VerifyResultAck(raw []byte) (*api.ResultAck, error)
	VerifyResultAcks(raw []byte) (*api.ResultAcks, error)
	VerifySyncRequest(raw []byte) (*api.SyncRequest, error)
}

var (
	_ envelopeVerifier = (*api.Verifier)(nil)
	_ envelopeVerifier = (*liveTrust)(nil)
)

// VerifyJob verifies with the dispatcher keys in force.
func (l *liveTrust) VerifyJob(raw []byte) (*api.Job, string, error) {
	return l.load().verifier.VerifyJob(raw)
}

// VerifyCancel verifies with the dispatcher keys in force.
func (l *liveTrust) VerifyCancel(raw []byte) (*api.Cancel, error) {
	return l.load().verifier.VerifyCancel(raw)
}

// VerifyResultAck verifies with the dispatcher keys in force.
func (l *liveTrust) VerifyResultAck(raw []byte) (*api.ResultAck, error) {
	return l.load().verifier.VerifyResultAck(raw)
}

// VerifyResultAcks verifies with the dispatcher keys in force.
func (l *liveTrust) VerifyResultAcks(raw []byte) (*api.ResultAcks, error) {
	return l.load().verifier.VerifyResultAcks(raw)
}

// VerifySyncRequest verifies with the dispatcher keys in force.
func (l *liveTrust) VerifySyncRequest(raw []byte) (*api.SyncRequest, error) {
	return l.load().verifier.VerifySyncRequest(raw)
}

// verifierOf is the *api.Verifier behind v now.
func verifierOf(v envelopeVerifier) (*api.Verifier, error) {
	switch v := v.(type) {
	case *liveTrust:
		return v.load().verifier, nil
	case *api.Verifier:
		return v, nil
	}
	return nil, fmt.Errorf("no envelope verifier of type %T", v)
}

// ltv is what takes the next document beyond B-B: the parts in force
// when the signer follows reloads, else its own.
func (d *docSigner) ltv() *ltvParts {
	if d.live != nil {
		return d.live.Load()
	}
	return d.parts
}

// reloadLoop reloads on each value of Options.Reload until ctx ends.
func (d *Daemon) reloadLoop(ctx context.Context) error {
	if d.opts.Reload == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.opts.Reload:
			_ = d.reload()
		}
	}
}

// reload reads the configuration file again and applies it, or refuses it
// whole and logs why. It tells systemd RELOADING=1 first and READY=1 at
// the end either way: tekend runs, with one configuration or the other.
func (d *Daemon) reload() error {
	d.notify.Reloading()
	defer func() { d.notify.Ready(d.statusLine()) }()
	err := d.applyConfig()
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		d.log.Error("configuration not reloaded; tekend goes on with the one it runs", "config", d.opts.ConfigPath, "err", msg)
		// The status's last error says so until a reload applies,
		// unless another error has replaced it by then.
		status := "configuration not reloaded: " + msg
		d.refused = &status
		d.lastErr.Store(d.refused)
	} else if d.refused != nil {
		d.lastErr.CompareAndSwap(d.refused, nil)
		d.refused = nil
	}
	d.statusChanged()
	return err
}

// applyConfig loads everything first and applies only once nothing is left
// that can fail.
func (d *Daemon) applyConfig() error {
	path := d.opts.ConfigPath
	if path == "" {
		return errors.New("tekend was started without a configuration file to read again")
	}
	check := CheckConfigFile(path)
	if len(check.Errors) > 0 {
		return errors.Join(check.Errors...)
	}
	next := check.Config
	applied := withReloadable(d.cfg, next)
	tr, err := loadTrust(applied, d.now)
	if err != nil {
		return err
	}
	parts, err := d.ltvPartsOf(applied)
	if err != nil {
		return err
	}
	level, err := ParseLogLevel(applied.LogLevel)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	if d.opts.LogLevel == nil && applied.LogLevel != d.applied.LogLevel {
		// Nothing to set: the logger was built with a fixed level.
		applied.LogLevel = d.applied.LogLevel
		d.log.Warn("log_level changed; restart tekend to apply", "field", "log_level")
	}
	for _, f := range changedFields(d.cfg, next) {
		if !reloadable[f] {
			d.log.Warn(f+" changed; restart tekend to apply", "field", f)
		}
	}
	prev := d.trust.load()
	d.trust.store(tr)
	d.ltv.Store(parts)
	// The line saying so is logged under the more verbose of the two
	// levels, so a reload from warn to info, or the other way, shows it.
	lv := d.opts.LogLevel
	lower := lv != nil && level < lv.Level()
	if lower {
		lv.Set(level)
	}
	d.log.Info("configuration reloaded", reloadAttrs(prev, tr, applied)...)
	if lv != nil && !lower {
		lv.Set(level)
	}
	d.applied = applied
	return nil
}

// reloadAttrs say what the reload put in force: the dispatcher keys by
// kid, added and removed, whether the signer CAs changed, the timestamp
// authority and the log level.
func reloadAttrs(prev, next trust, applied Config) []any {
	added, removed := keyChanges(prev.verifier.Keys, next.verifier.Keys)
	tsas := []string{}
	for _, a := range applied.authorities() {
		tsas = append(tsas, a.URL)
	}
	return []any{
		"dispatcher_keys", slices.Sorted(maps.Keys(next.verifier.Keys)),
		"keys_added", added, "keys_removed", removed,
		"signer_cas_changed", !samePool(prev, next),
		"tsa_urls", tsas, "level", applied.targetLevel(), "log_level", applied.LogLevel,
	}
}

// keyChanges are the kids in next and not in prev, and the other way round.
func keyChanges[V any](prev, next map[string]V) (added, removed []string) {
	for kid := range next {
		if _, ok := prev[kid]; !ok {
			added = append(added, kid)
		}
	}
	for kid := range prev {
		if _, ok := next[kid]; !ok {
			removed = append(removed, kid)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

func samePool(a, b trust) bool {
	if a.signerRoots == nil || b.signerRoots == nil {
		return a.signerRoots == b.signerRoots
	}
	return a.signerRoots.Equal(b.signerRoots)
}

// changedFields names, by their TOML keys ("broker.urls"), the fields of a
// and b that differ. An empty list and no list are the same.
func changedFields(a, b Config) []string {
	var out []string
	var walk func(prefix string, x, y reflect.Value)
	walk = func(prefix string, x, y reflect.Value) {
		for i := range x.NumField() {
			f := x.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				name = strings.ToLower(f.Name)
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			fx, fy := x.Field(i), y.Field(i)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(name, fx, fy)
			case f.Type.Kind() == reflect.Slice && fx.Len() == 0 && fy.Len() == 0:
			case !reflect.DeepEqual(fx.Interface(), fy.Interface()):
				out = append(out, name)
			}
		}
	}
	walk("", reflect.ValueOf(a), reflect.ValueOf(b))
	return out
}
