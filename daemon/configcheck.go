package daemon

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
)

// sampleTerminalID is the terminal id of the sample configuration
// (packaging/tekend.toml). Left as it is, two terminals share one topic
// tree and one MQTT client id, and the broker hands each one's session to
// the other at every connect.
const sampleTerminalID = "kendari-setda-01"

// ConfigCheck is what CheckConfig found in a configuration.
type ConfigCheck struct {
	// Config is the configuration read over the defaults; Parsed is false
	// when the file could not be read or parsed, and Config is then zero.
	Config Config
	Parsed bool
	// Errors are what tekend run refuses, one error per field or file,
	// each with the message run gives.
	Errors []error
	// Warnings are values tekend runs with that are almost certainly
	// mistakes: the sample's placeholders, files it would not use, a
	// certificate out of its validity.
	Warnings []*FieldError
}

// Failed reports whether the check fails: on any error, and with strict
// on any warning too.
func (c *ConfigCheck) Failed(strict bool) bool {
	return len(c.Errors) > 0 || (strict && len(c.Warnings) > 0)
}

// CheckConfigFile reads the file at path as tekend run does and checks it
// with CheckConfig; a file that cannot be read or parsed is one error.
func CheckConfigFile(path string) *ConfigCheck {
	cfg, err := readConfig(path)
	if err != nil {
		return &ConfigCheck{Errors: []error{err}}
	}
	return CheckConfig(cfg)
}

// CheckConfig validates cfg, loads every file it names with the loaders
// Open uses (files.go), so that it refuses whatever tekend run would
// refuse, in the same words, and looks for values that are most likely
// mistakes. Every problem is reported, not just the first.
func CheckConfig(cfg Config) *ConfigCheck {
	c := &ConfigCheck{Config: cfg, Parsed: true}
	c.Errors = append(c.Errors, flatten(cfg.Validate())...)
	// The loaders run even when a field is invalid: every file named is
	// still worth reading, and an installer fixes all at once.
	if _, err := loadTrust(cfg, time.Now); err != nil {
		c.Errors = append(c.Errors, flatten(err)...)
	}
	if _, err := BrokerConnection(cfg); err != nil {
		c.Errors = append(c.Errors, flatten(err)...)
	}
	if err := loadWebConfig(cfg.Metrics.WebConfig); err != nil {
		c.Errors = append(c.Errors, err)
	}
	if _, _, err := loadTSA(cfg, nil); err != nil {
		c.Errors = append(c.Errors, flatten(err)...)
	}
	c.Warnings = configWarnings(&cfg, time.Now())
	return c
}

// configWarnings are the values tekend accepts but should not be given.
func configWarnings(c *Config, now time.Time) []*FieldError {
	var ws []*FieldError
	warn := func(field string, value any, format string, args ...any) {
		ws = append(ws, &FieldError{Field: field, Value: strconv.Quote(fmt.Sprint(value)), Msg: fmt.Sprintf(format, args...)})
	}
	if c.TerminalID == sampleTerminalID {
		warn("terminal_id", c.TerminalID, "the sample's id: give this terminal its own; terminals that share an id share one MQTT client id and take each other's session and jobs")
	}
	if c.Broker.ClientID == "teken-"+sampleTerminalID {
		warn("broker.client_id", c.Broker.ClientID, "the sample terminal's client id: leave it empty (teken-{terminal_id}) or give this terminal its own")
	}
	tlsBroker := false
	for i, u := range c.Broker.URLs {
		p, err := url.Parse(u)
		if err != nil {
			continue // Validate says why
		}
		field := fmt.Sprintf("broker.urls[%d]", i)
		switch {
		case placeholderHost(p.Hostname()):
			warn(field, u, "%s is a placeholder (a name reserved for examples): give the province's broker", p.Hostname())
		case p.Scheme == "tcp" || p.Scheme == "mqtt":
			if !loopbackHost(p.Hostname()) {
				warn(field, u, "plain MQTT: jobs, results and the broker password cross the network unencrypted; use ssl:// with broker.ca_file")
			}
		}
		if p.Scheme != "tcp" && p.Scheme != "mqtt" {
			tlsBroker = true
		}
	}
	if !tlsBroker {
		for _, f := range []struct{ field, value string }{
			{"broker.ca_file", c.Broker.CAFile}, {"broker.cert_file", c.Broker.CertFile}, {"broker.key_file", c.Broker.KeyFile},
		} {
			if f.value != "" {
				warn(f.field, f.value, "not used: no broker URL is ssl://, tls:// or mqtts://")
			}
		}
	}
	if c.Broker.PasswordFile != "" && c.Broker.Username == "" {
		warn("broker.password_file", c.Broker.PasswordFile, "not used without broker.username: MQTT sends a password only with a user name (MQTT 3.1.1 §3.1.2.9)")
	}
	for i, a := range c.TSA.Authorities {
		field := fmt.Sprintf("tsa.authority[%d].url", i)
		p, err := url.Parse(a.URL)
		switch {
		case err != nil:
		case placeholderHost(p.Hostname()):
			warn(field, a.URL, "%s is a placeholder (a name reserved for examples): give the province's timestamp authority", p.Hostname())
		case a.Username != "" && p.Scheme == "http":
			warn(field, a.URL, "HTTP Basic authentication over plain http: the password crosses the network unencrypted; use the authority's https URL if it has one")
		}
	}
	if c.Signing.TSAURL != "" {
		if p, err := url.Parse(c.Signing.TSAURL); err == nil && placeholderHost(p.Hostname()) {
			warn("signing.tsa_url", c.Signing.TSAURL, "%s is a placeholder (a name reserved for examples): give the province's timestamp authority, or leave it empty", p.Hostname())
		}
	}
	for _, h := range c.Metrics.AllowedHosts {
		// The sample's comment names the sample terminal's host.
		if placeholderHost(strings.Trim(h, "[]")) || strings.HasPrefix(strings.ToLower(h), sampleTerminalID+".") {
			warn("metrics.allowed_hosts", h, "a placeholder (a name reserved for examples, or the sample terminal's): list the name Prometheus scrapes this terminal by")
		}
	}
	if len(c.Token.AttestationRoots) > 0 && !c.Token.RequireAttestation {
		warn("token.attestation_roots", strings.Join(c.Token.AttestationRoots, ", "), "not used without token.require_attestation = true")
	}
	if !c.Token.RefuseDefaultPIN {
		warn("token.refuse_default_pin", false, "tokens still holding the factory PIN or PUK (123456, 12345678) may sign: anyone holding such a token signs as its official")
	}
	ws = append(ws, certificateWarnings(c, now)...)
	return ws
}

// certificateWarnings names the certificates among the configured files
// that are outside their validity now: tekend runs with them, but the
// broker refuses an expired client certificate and no official's
// certificate chains to an expired CA. Files that do not load are errors
// already and are skipped here.
func certificateWarnings(c *Config, now time.Time) []*FieldError {
	type file struct{ field, path string }
	files := []file{{"broker.ca_file", c.Broker.CAFile}, {"broker.cert_file", c.Broker.CertFile}}
	for _, f := range c.Signing.SignerCAFiles {
		files = append(files, file{"signing.signer_ca_files", f})
	}
	for _, f := range c.Token.AttestationRoots {
		files = append(files, file{"token.attestation_roots", f})
	}
	var ws []*FieldError
	for _, f := range files {
		if f.path == "" {
			continue
		}
		certs, err := readCertificates(f.path)
		if err != nil {
			continue
		}
		for _, cert := range certs {
			var msg string
			switch {
			case now.After(cert.NotAfter):
				msg = fmt.Sprintf("certificate %q expired on %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.DateOnly))
			case now.Before(cert.NotBefore):
				msg = fmt.Sprintf("certificate %q is not valid before %s (is the clock right?)", cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339))
			default:
				continue
			}
			ws = append(ws, &FieldError{Field: f.field, Value: strconv.Quote(f.path), Msg: msg})
		}
	}
	return ws
}

// placeholderHost reports whether host is a name reserved for examples and
// documentation: a label "example" anywhere (RFC 2606 §2 and §3: example,
// example.com, example.net, example.org; the sample's mqtt.example.go.id
// follows the same convention under .go.id) or the .invalid TLD (§2).
func placeholderHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "example" {
			return true
		}
	}
	return h == "invalid" || strings.HasSuffix(h, ".invalid")
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckSignerCertificate says why tekend would not let cert sign now, by
// the same policy the kiosk applies when a token is tapped (certPolicy):
// validity, key usage and, when signing.signer_ca_files is set, a chain to
// those CAs. It returns nil when the certificate may sign.
func CheckSignerCertificate(cfg Config, cert *x509.Certificate, now time.Time) error {
	roots, err := loadSignerRoots(cfg.Signing.SignerCAFiles)
	if err != nil {
		return err
	}
	p := certPolicy{roots: roots, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
	msg := p.check(cert)
	if msg == nil {
		return nil
	}
	switch msg.Code {
	case kiosk.CodeCertExpired:
		return fmt.Errorf("certificate expired on %s", msg.Params["date"])
	case kiosk.CodeCertNotYetValid:
		return fmt.Errorf("certificate not valid before %s", msg.Params["date"])
	case kiosk.CodeCertUsage:
		return fmt.Errorf("certificate not for signing (key usage %#x)", cert.KeyUsage)
	case kiosk.CodeCertUntrusted:
		return errors.New("certificate does not chain to the CAs of signing.signer_ca_files")
	}
	return fmt.Errorf("certificate refused: %s", msg.Code)
}
