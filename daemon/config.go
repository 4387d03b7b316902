package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones for signature blocks, even where the system has none

	"github.com/BurntSushi/toml"

	"github.com/tekenid/teken/api"
)

// DefaultConfigPath is where the packaged service reads its configuration.
const DefaultConfigPath = "/etc/teken/tekend.toml"

// Config is tekend's configuration. Every field is documented in
// packaging/tekend.toml; DefaultConfig gives the values a missing field takes.
type Config struct {
	TerminalID string `toml:"terminal_id"`
	// LogLevel is the least severe level logged: debug, info, warn or
	// error.
	LogLevel   string         `toml:"log_level"`
	DataDir    string         `toml:"data_dir"`
	Broker     BrokerConfig   `toml:"broker"`
	Dispatcher DispatchConfig `toml:"dispatcher"`
	Kiosk      KioskConfig    `toml:"kiosk"`
	Metrics    MetricsConfig  `toml:"metrics"`
	Signing    SigningConfig  `toml:"signing"`
	Store      StoreConfig    `toml:"store"`
	Status     StatusConfig   `toml:"status"`
	Token      TokenConfig    `toml:"token"`
	// TSA and Revocation serve the levels beyond B-B (ltvconfig.go).
	TSA        TSAConfig        `toml:"tsa"`
	Revocation RevocationConfig `toml:"revocation"`
}

// BrokerConfig says how to reach the MQTT broker.
type BrokerConfig struct {
	URLs                 []string `toml:"urls"`
	TopicRoot            string   `toml:"topic_root"`
	ClientID             string   `toml:"client_id"`
	CAFile               string   `toml:"ca_file"`
	CertFile             string   `toml:"cert_file"`
	KeyFile              string   `toml:"key_file"`
	Username             string   `toml:"username"`
	PasswordFile         string   `toml:"password_file"`
	MaxReconnectInterval Duration `toml:"max_reconnect_interval"`
	// A result without its ResultAck goes out again after
	// ResultResendInitial, then after twice that, up to ResultResendMax,
	// while connected; every reconnect and SyncRequest sends it at once.
	ResultResendInitial Duration `toml:"result_resend_initial"`
	ResultResendMax     Duration `toml:"result_resend_max"`
}

// DispatchConfig says which dispatchers the terminal trusts and what jobs it
// accepts from them.
type DispatchConfig struct {
	KeyFiles      []string `toml:"key_files"`
	ClockSkew     Duration `toml:"clock_skew"`
	MaxJobBytes   int64    `toml:"max_job_bytes"`
	AllowHashOnly bool     `toml:"allow_hash_only"`
}

// KioskConfig is the official's page.
type KioskConfig struct {
	Listen   string `toml:"listen"`
	Language string `toml:"language"`
}

// MetricsConfig is IT's listener for /metrics, /healthz and /readyz.
type MetricsConfig struct {
	Listen    string `toml:"listen"`
	WebConfig string `toml:"web_config"`
	// AllowedHosts are the names Prometheus may use in Host, besides the
	// loopback names and the listen address's own host.
	AllowedHosts []string `toml:"allowed_hosts"`
}

// SigningConfig governs what may be signed and how.
type SigningConfig struct {
	SignerCAFiles []string `toml:"signer_ca_files"`
	MaxBatch      int      `toml:"max_batch"`
	ShutdownGrace Duration `toml:"shutdown_grace"`
	TimeZone      string   `toml:"time_zone"`
	TSAURL        string   `toml:"tsa_url"`
	TSATimeout    Duration `toml:"tsa_timeout"`
	// Level is the level each signature is taken to (B-B, B-T, B-LT,
	// B-LTA; the cms format stops at B-LT); empty means B-T for PDFs
	// with a timestamp authority and B-B for the rest (ltvconfig.go).
	Level string `toml:"level"`
	// RequireLevel keeps a signed letter whose document fell short of
	// Level from being sent until it reaches it (held.go).
	RequireLevel bool `toml:"require_level"`
	// PDF work is bounded per document and per job (see signature/pades
	// Limits): a letter that needs more fails with bad_document.
	PDFMaxDecompressedBytes    int64 `toml:"pdf_max_decompressed_bytes"`
	PDFMaxJobDecompressedBytes int64 `toml:"pdf_max_job_decompressed_bytes"`
	PDFAllowEmbeddedFiles      bool  `toml:"pdf_allow_embedded_files"`
	// AllowUnrenderableDocuments accepts jobs with documents whose media
	// type the kiosk page cannot show (kiosk.Renderable); off, they are
	// refused at intake with unsupported_media_type. Hash-only documents
	// follow dispatcher.allow_hash_only instead.
	AllowUnrenderableDocuments bool `toml:"allow_unrenderable_documents"`
}

// StoreConfig governs the bbolt store.
type StoreConfig struct {
	Retention    Duration `toml:"retention"`
	MaxSizeBytes int64    `toml:"max_size_bytes"`
}

// StatusConfig governs the retained MQTT status message.
type StatusConfig struct {
	MinInterval Duration `toml:"min_interval"`
	// Heartbeat publishes the status again, unchanged, this often: a
	// broker that gives no retained message to a wildcard subscription
	// (RabbitMQ 3.10) still shows every terminal to a fleet view within
	// it. Zero turns it off.
	Heartbeat Duration `toml:"heartbeat"`
}

// TokenConfig governs which tokens may sign: what IT's enrolment must have
// done to a token before an official signs with it (docs/ENROLMENT.md).
type TokenConfig struct {
	// RefuseDefaultPIN refuses a token whose PIN or PUK is still the
	// factory default: with a default PUK anyone holding the token sets a
	// new PIN. A token that cannot say (firmware before 5.3) signs, with a
	// warning in the log and the status.
	RefuseDefaultPIN bool `toml:"refuse_default_pin"`
	// RequireAttestation refuses a token unless its 9c key is attested by
	// one of AttestationRoots: made on this token, with PIN policy always.
	RequireAttestation bool `toml:"require_attestation"`
	// AttestationRoots are PEM files of the attestation CAs (Yubico's PIV
	// attestation root for YubiKeys).
	AttestationRoots []string `toml:"attestation_roots"`
}

// Duration is a time.Duration written in TOML as a string such as "90s".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultConfig returns the values every field takes when the file is silent.
func DefaultConfig() Config {
	return Config{
		DataDir:  "/var/lib/teken",
		LogLevel: "info",
		Broker: BrokerConfig{
			TopicRoot:            api.DefaultRoot,
			MaxReconnectInterval: Duration(time.Minute),
			ResultResendInitial:  Duration(30 * time.Second),
			ResultResendMax:      Duration(10 * time.Minute),
		},
		Dispatcher: DispatchConfig{
			ClockSkew:   Duration(2 * time.Minute),
			MaxJobBytes: 10 << 20,
		},
		Kiosk:   KioskConfig{Listen: "127.0.0.1:8470", Language: "id"},
		Metrics: MetricsConfig{Listen: "127.0.0.1:9470"},
		Signing: SigningConfig{
			MaxBatch: 20, ShutdownGrace: Duration(20 * time.Second),
			TimeZone: "Asia/Makassar", TSATimeout: Duration(10 * time.Second),
			PDFMaxDecompressedBytes: 32 << 20, PDFMaxJobDecompressedBytes: 64 << 20,
		},
		Store: StoreConfig{
			Retention:    Duration(30 * 24 * time.Hour),
			MaxSizeBytes: 1 << 30,
		},
		Status: StatusConfig{MinInterval: Duration(30 * time.Second), Heartbeat: Duration(time.Minute)},
		Token:  TokenConfig{RefuseDefaultPIN: true},
		TSA:    TSAConfig{MaxSkew: Duration(5 * time.Minute)},
		Revocation: RevocationConfig{
			Check: RevocationPrefer, Timeout: Duration(10 * time.Second),
		},
	}
}

// FieldError names a configuration field and what is wrong with its value.
type FieldError struct {
	Field string
	Value string
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s = %s: %s", e.Field, e.Value, e.Msg)
}

// ParseConfig reads TOML over the defaults. Unknown keys are an error, so a
// misspelt field is not silently ignored.
func ParseConfig(r io.Reader) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.NewDecoder(r).Decode(&cfg)
	if err != nil {
		return Config{}, fmt.Errorf("parse configuration: %w", err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("parse configuration: unknown keys: %s", strings.Join(keys, ", "))
	}
	return cfg, nil
}

// LoadConfig reads and validates the file at path. It does not read the
// files the configuration names: Open does, and CheckConfigFile does both.
func LoadConfig(path string) (Config, error) {
	cfg, err := readConfig(path)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func readConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("open configuration: %w", err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every field and returns all problems at once, each naming
// the field and its bad value, one per line.
func (c *Config) Validate() error {
	var errs problems
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: strconv.Quote(fmt.Sprint(value)), Msg: fmt.Sprintf(format, args...)})
	}
	if err := api.ValidTerminalID(c.TerminalID); err != nil {
		bad("terminal_id", c.TerminalID, "want a slug such as \"kendari-setda-01\"")
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("log_level", c.LogLevel, "want debug, info, warn or error")
	}
	if !filepath.IsAbs(c.DataDir) {
		bad("data_dir", c.DataDir, "want an absolute path")
	}
	if len(c.Broker.URLs) == 0 {
		bad("broker.urls", "", "want at least one broker, such as \"ssl://mqtt.example.go.id:8883\"")
	}
	for i, u := range c.Broker.URLs {
		field := fmt.Sprintf("broker.urls[%d]", i)
		p, err := url.Parse(u)
		switch {
		case err != nil:
			bad(field, u, "%v", err)
		case p.Scheme != "tcp" && p.Scheme != "ssl" && p.Scheme != "tls" && p.Scheme != "mqtt" && p.Scheme != "mqtts":
			bad(field, u, "scheme must be tcp, mqtt, ssl, tls or mqtts")
		case p.Port() == "":
			bad(field, u, "missing port")
		case p.Scheme != "tcp" && p.Scheme != "mqtt" && c.Broker.CAFile == "":
			// Without a CA of its own the broker's certificate would be
			// checked against the system's roots, which any public CA
			// can satisfy for a name it was asked to certify.
			bad("broker.ca_file", "", "required for the TLS broker %s: the system's CAs are never trusted for the broker", u)
		}
	}
	if len(c.ClientID()) > 65535 { // MQTT 3.1.1 §1.5.3: a UTF-8 string's length is 16 bits
		bad("broker.client_id", c.Broker.ClientID[:32]+"…", "want at most 65535 bytes, not %d", len(c.ClientID()))
	}
	if err := api.ValidRoot(c.Broker.TopicRoot); err != nil {
		bad("broker.topic_root", c.Broker.TopicRoot, "%v", err)
	}
	if (c.Broker.CertFile == "") != (c.Broker.KeyFile == "") {
		bad("broker.cert_file", c.Broker.CertFile, "cert_file and key_file go together")
	}
	if c.Broker.MaxReconnectInterval < Duration(time.Second) {
		bad("broker.max_reconnect_interval", time.Duration(c.Broker.MaxReconnectInterval), "want at least 1s")
	}
	if c.Broker.ResultResendInitial < Duration(time.Second) {
		bad("broker.result_resend_initial", time.Duration(c.Broker.ResultResendInitial), "want at least 1s")
	}
	if c.Broker.ResultResendMax < c.Broker.ResultResendInitial {
		bad("broker.result_resend_max", time.Duration(c.Broker.ResultResendMax), "want at least result_resend_initial (%v)", time.Duration(c.Broker.ResultResendInitial))
	}
	if len(c.Dispatcher.KeyFiles) == 0 {
		bad("dispatcher.key_files", "", "want at least one trusted dispatcher public key (PEM)")
	}
	if c.Dispatcher.ClockSkew < 0 || c.Dispatcher.ClockSkew > Duration(time.Hour) {
		bad("dispatcher.clock_skew", time.Duration(c.Dispatcher.ClockSkew), "want between 0s and 1h")
	}
	if c.Dispatcher.MaxJobBytes < 1<<10 || c.Dispatcher.MaxJobBytes > 64<<20 {
		bad("dispatcher.max_job_bytes", c.Dispatcher.MaxJobBytes, "want between 1024 and 67108864")
	}
	if err := loopbackAddr(c.Kiosk.Listen); err != nil {
		bad("kiosk.listen", c.Kiosk.Listen, "%v", err)
	}
	if c.Kiosk.Language != "id" && c.Kiosk.Language != "en" {
		bad("kiosk.language", c.Kiosk.Language, "want \"id\" or \"en\"")
	}
	if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		bad("metrics.listen", c.Metrics.Listen, "%v", err)
	}
	for _, h := range c.Metrics.AllowedHosts {
		if !validHostName(h) {
			bad("metrics.allowed_hosts", h, "want a host name or an IP address, without port")
		}
	}
	if c.Signing.MaxBatch < 1 || c.Signing.MaxBatch > 200 {
		bad("signing.max_batch", c.Signing.MaxBatch, "want between 1 and 200")
	}
	if c.Signing.ShutdownGrace < Duration(time.Second) {
		bad("signing.shutdown_grace", time.Duration(c.Signing.ShutdownGrace), "want at least 1s")
	}
	if _, err := time.LoadLocation(c.Signing.TimeZone); err != nil || c.Signing.TimeZone == "" {
		bad("signing.time_zone", c.Signing.TimeZone, "want an IANA zone such as \"Asia/Makassar\" (WITA)")
	}
	if c.Signing.TSAURL != "" {
		if u, err := url.Parse(c.Signing.TSAURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("signing.tsa_url", c.Signing.TSAURL, "want an http or https URL of an RFC 3161 timestamp authority")
		}
	}
	if c.Signing.PDFMaxDecompressedBytes < 1<<20 || c.Signing.PDFMaxDecompressedBytes > 1<<30 {
		bad("signing.pdf_max_decompressed_bytes", c.Signing.PDFMaxDecompressedBytes, "want between 1048576 (1 MiB) and 1073741824 (1 GiB)")
	}
	if c.Signing.PDFMaxJobDecompressedBytes < c.Signing.PDFMaxDecompressedBytes || c.Signing.PDFMaxJobDecompressedBytes > 4<<30 {
		bad("signing.pdf_max_job_decompressed_bytes", c.Signing.PDFMaxJobDecompressedBytes, "want at least signing.pdf_max_decompressed_bytes and at most 4294967296 (4 GiB)")
	}
	if c.Signing.TSATimeout < Duration(time.Second) || c.Signing.TSATimeout > Duration(2*time.Minute) {
		bad("signing.tsa_timeout", time.Duration(c.Signing.TSATimeout), "want between 1s and 2m")
	}
	c.validateLTV(bad)
	if c.Store.Retention < Duration(time.Hour) {
		bad("store.retention", time.Duration(c.Store.Retention), "want at least 1h")
	}
	if c.Store.MaxSizeBytes < 1<<20 {
		bad("store.max_size_bytes", c.Store.MaxSizeBytes, "want at least 1048576")
	}
	if c.Status.MinInterval < Duration(time.Second) {
		bad("status.min_interval", time.Duration(c.Status.MinInterval), "want at least 1s")
	}
	if c.Status.Heartbeat != 0 && c.Status.Heartbeat < c.Status.MinInterval {
		bad("status.heartbeat", time.Duration(c.Status.Heartbeat), "want 0 (off) or at least status.min_interval (%v)", time.Duration(c.Status.MinInterval))
	}
	if c.Token.RequireAttestation && len(c.Token.AttestationRoots) == 0 {
		bad("token.attestation_roots", "", "required by token.require_attestation: want the attestation CA files, such as Yubico's PIV attestation root")
	}
	return errs.err()
}

// loopbackAddr accepts only host:port on a loopback address: the kiosk's API
// takes PINs and must never be reachable from the network.
var hostNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// validHostName accepts a DNS name or an IP address (IPv6 with or without
// brackets), as Host may carry it, without a port.
func validHostName(h string) bool {
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
		return true
	}
	return len(h) <= 253 && hostNamePattern.MatchString(h)
}

func loopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("the kiosk must listen on a loopback address (127.0.0.1 or ::1)")
	}
	return nil
}

// ClientID is the broker client id: stable across restarts, so the broker
// keeps the terminal's session (CleanSession=false).
func (c *Config) ClientID() string {
	if c.Broker.ClientID != "" {
		return c.Broker.ClientID
	}
	return "teken-" + c.TerminalID
}

// WriteTOML prints the effective configuration, for `tekend check-config`.
func (c *Config) WriteTOML(w io.Writer) error {
	return toml.NewEncoder(w).Encode(c)
}
