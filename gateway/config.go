package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tekenid/teken/api"
)

// DefaultConfigPath is where the packaged service reads its configuration.
const DefaultConfigPath = "/etc/teken/tekengw.toml"

// Config is the gateway's configuration; packaging/tekengw.toml documents
// every field.
type Config struct {
	LogLevel string `toml:"log_level"`
	// Listen is the HTTP API's address, with /metrics, /healthz and
	// /readyz beside it.
	Listen string       `toml:"listen"`
	Store  StoreConfig  `toml:"store"`
	Broker BrokerConfig `toml:"broker"`
	// DispatcherKeyFile is the private key (PEM) that signs every job,
	// cancel and acknowledgement; terminals trust its public half.
	DispatcherKeyFile string `toml:"dispatcher_key_file"`
	// SignerCertFiles are the officials' certificates (PEM), so that a
	// letter may name its signer by NIP.
	SignerCertFiles []string `toml:"signer_cert_files"`
	// SignerCAFiles are the CAs (PEM) officials' certificates chain to,
	// as the terminals' signing.signer_ca_files: the validation reports
	// (GET …/report) judge the chain against them.
	SignerCAFiles []string `toml:"signer_ca_files"`
	// Groups name lists of terminals a letter may be addressed to.
	Groups map[string][]string `toml:"groups"`
	// DefaultExpiry is how long a letter stays open when its request
	// sets no expiry.
	DefaultExpiry Duration `toml:"default_expiry"`
	// MaxLetterBytes bounds a submit request's body.
	MaxLetterBytes int64          `toml:"max_letter_bytes"`
	Clients        []ClientConfig `toml:"clients"`
	Webhook        WebhookConfig  `toml:"webhook"`
}

// StoreConfig says where letters are kept: "bolt" with Path, or
// "postgres" with DSN.
type StoreConfig struct {
	Kind string `toml:"kind"`
	Path string `toml:"path"`
	DSN  string `toml:"dsn"`
}

// BrokerConfig says how to reach the MQTT broker.
type BrokerConfig struct {
	URLs         []string `toml:"urls"`
	TopicRoot    string   `toml:"topic_root"`
	ClientID     string   `toml:"client_id"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	// SharedGroup: several gateway instances with the same group take
	// each receipt, result and sync once between them, through MQTT
	// shared subscriptions ($share/…), on brokers that have them for
	// MQTT 3.1.1 (Mosquitto; not NATS nor RabbitMQ: docs/BROKERS.md).
	// Empty: every instance takes every message, and the shared store
	// keeps each result once.
	SharedGroup string `toml:"shared_group"`
}

// ClientConfig is one letter system allowed to call the API.
type ClientConfig struct {
	ID string `toml:"id"`
	// KeySHA256 are the SHA-256 hashes (hex) of the client's API keys:
	// the keys themselves are never stored. Two let a key be rotated.
	KeySHA256 []string `toml:"key_sha256"`
	// Terminals the client may send letters to and see: terminal ids,
	// "prefix-*" patterns, or "@group".
	Terminals []string         `toml:"terminals"`
	Webhooks  []EndpointConfig `toml:"webhooks"`
}

// EndpointConfig is one webhook URL of a client.
type EndpointConfig struct {
	Name string `toml:"name"`
	URL  string `toml:"url"`
	// SecretFile holds the HMAC-SHA256 key the deliveries are signed with.
	SecretFile string `toml:"secret_file"`
}

// WebhookConfig tunes delivery.
type WebhookConfig struct {
	Timeout    Duration `toml:"timeout"`     // per attempt
	MinBackoff Duration `toml:"min_backoff"` // after the first failure
	MaxBackoff Duration `toml:"max_backoff"` // the cap
}

// Duration is a time.Duration written as "30s" in the file.
type Duration struct{ time.Duration }

// UnmarshalText reads "30s", "72h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig is what a missing field takes.
func DefaultConfig() Config {
	return Config{
		LogLevel:       "info",
		Listen:         "127.0.0.1:8480",
		Store:          StoreConfig{Kind: "bolt", Path: "/var/lib/teken-gateway/gateway.db"},
		Broker:         BrokerConfig{URLs: []string{"tcp://127.0.0.1:1883"}, TopicRoot: api.DefaultRoot, ClientID: "teken-gateway"},
		DefaultExpiry:  Duration{7 * 24 * time.Hour},
		MaxLetterBytes: 32 << 20,
		Webhook: WebhookConfig{Timeout: Duration{10 * time.Second}, MinBackoff: Duration{5 * time.Second},
			MaxBackoff: Duration{time.Hour}},
	}
}

// LoadConfig reads the file at path over DefaultConfig and validates it.
func LoadConfig(p string) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.DecodeFile(p, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", p, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return Config{}, fmt.Errorf("%s: unknown setting %s", p, undecoded[0])
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
}

// Validate returns every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if host, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	} else if host == "" {
		bad("listen %q: name the address to listen on (all addresses is not a default)", c.Listen)
	}
	switch c.Store.Kind {
	case "bolt":
		if c.Store.Path == "" {
			bad("store.path is required for store.kind bolt")
		}
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn is required for store.kind postgres")
		}
	default:
		bad("store.kind %q: want bolt or postgres", c.Store.Kind)
	}
	if len(c.Broker.URLs) == 0 {
		bad("broker.urls: at least one broker")
	}
	if strings.ContainsAny(c.Broker.SharedGroup, "/+# ") {
		bad("broker.shared_group %q: a name without /, +, # or spaces", c.Broker.SharedGroup)
	}
	if c.DispatcherKeyFile == "" {
		bad("dispatcher_key_file is required")
	}
	if c.DefaultExpiry.Duration <= 0 {
		bad("default_expiry must be positive")
	}
	if c.MaxLetterBytes < 1<<20 {
		bad("max_letter_bytes %d: at least 1 MiB", c.MaxLetterBytes)
	}
	for g, terms := range c.Groups {
		if len(terms) == 0 {
			bad("groups.%s is empty", g)
		}
		for _, t := range terms {
			if err := api.ValidTerminalID(t); err != nil {
				bad("groups.%s: %v", g, err)
			}
		}
	}
	ids := map[string]bool{}
	keys := map[string]bool{}
	for i, cl := range c.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if cl.ID == "" || strings.ContainsAny(cl.ID, " \t/") {
			bad("%s.id %q: want a name without spaces or slashes", where, cl.ID)
		}
		if ids[cl.ID] {
			bad("%s.id %q: two clients of one name", where, cl.ID)
		}
		ids[cl.ID] = true
		if len(cl.KeySHA256) == 0 {
			bad("%s (%s): key_sha256: at least one key hash (tekengw key prints a key and its hash)", where, cl.ID)
		}
		for _, h := range cl.KeySHA256 {
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size || h != strings.ToLower(h) {
				bad("%s (%s): key_sha256 %q: want 64 lower-case hex digits", where, cl.ID, h)
			}
			if keys[h] {
				bad("%s (%s): key_sha256 %q is another client's too", where, cl.ID, h)
			}
			keys[h] = true
		}
		if len(cl.Terminals) == 0 {
			bad("%s (%s): terminals: name the terminals it may use", where, cl.ID)
		}
		for _, t := range cl.Terminals {
			if g, ok := strings.CutPrefix(t, "@"); ok {
				if _, known := c.Groups[g]; !known {
					bad("%s (%s): terminals: no group %q", where, cl.ID, g)
				}
				continue
			}
			if !validTerminalPattern(t) {
				bad("%s (%s): terminals: %q is not a terminal id, a prefix-* pattern or @group", where, cl.ID, t)
			}
		}
		names := map[string]bool{}
		for j, ep := range cl.Webhooks {
			ew := fmt.Sprintf("%s.webhooks[%d]", where, j)
			if ep.Name == "" || names[ep.Name] {
				bad("%s: name %q: want a name of its own", ew, ep.Name)
			}
			names[ep.Name] = true
			u, err := url.Parse(ep.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("%s: url %q: want an http or https URL", ew, ep.URL)
			}
			if ep.SecretFile == "" {
				bad("%s: secret_file is required: every delivery is signed", ew)
			}
		}
	}
	if c.Webhook.Timeout.Duration <= 0 || c.Webhook.MinBackoff.Duration <= 0 || c.Webhook.MaxBackoff.Duration < c.Webhook.MinBackoff.Duration {
		bad("webhook: timeout and min_backoff must be positive, max_backoff at least min_backoff")
	}
	return errors.Join(errs...)
}

// loadSigners reads the officials' certificates, by NIP (the subject's
// serial number) and by hash.
func loadSigners(files []string) (map[string]signer, error) {
	out := map[string]signer{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("signer certificates: %w", err)
		}
		for rest := raw; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("signer certificate in %s: %w", f, err)
			}
			sum := sha256.Sum256(c.Raw)
			s := signer{CertSHA256: hex.EncodeToString(sum[:]), NIP: c.Subject.SerialNumber, Name: c.Subject.CommonName, NotAfter: c.NotAfter}
			out[s.CertSHA256] = s
			if s.NIP != "" {
				if prev, ok := out[s.NIP]; !ok || prev.NotAfter.Before(s.NotAfter) {
					out[s.NIP] = s // the newest certificate of an official
				}
			}
		}
	}
	return out, nil
}

type signer struct {
	CertSHA256 string
	NIP        string
	Name       string
	NotAfter   time.Time
}
