package ctl

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// Settings are what several commands share: how to reach the broker, which
// key signs jobs and which CA vouches for signers. They are layered: the
// config file, then the environment, then flags (see Load and Override).
type Settings struct {
	// Brokers are broker URLs such as ssl://broker:8883, tried in order.
	Brokers []string `toml:"-"` // "broker" in the file, see ParseConfig
	// CA, Cert and Key are the broker's TLS trust and the client
	// certificate (PEM files).
	CA   string `toml:"ca"`
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// DispatcherKey is the PEM private key that signs jobs.
	DispatcherKey string `toml:"dispatcher_key"`
	// Root is the topic root; api.DefaultRoot when empty.
	Root string `toml:"root"`
	// SignerCA is the CA bundle that signer certificates chain to, for
	// verify; CA is used when it is empty.
	SignerCA string `toml:"signer_ca"`
	// Terminal is the default terminal for dispatch.
	Terminal string `toml:"terminal"`
	// Username and Password authenticate to the broker, when it asks.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// MaxMessageBytes is the broker's message size limit; a job whose
	// envelope is larger is refused before it is published. Zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int `toml:"max_message_bytes"`
	// Logger receives the broker connection's log; nil means
	// slog.Default(). It comes from the command line, never from the file.
	Logger *slog.Logger `toml:"-"`
}

// DefaultMaxMessageBytes is the broker message size docs/PROTOCOL.md asks
// for: the largest Result, which is more than the largest job envelope at
// the default content limit.
const DefaultMaxMessageBytes = api.MaxResultBytes

// MessageLimit returns the broker's message size limit to check jobs
// against.
func (s Settings) MessageLimit() int {
	if s.MaxMessageBytes <= 0 {
		return DefaultMaxMessageBytes
	}
	return s.MaxMessageBytes
}

// The environment variables Load reads, each overriding its config key.
var envKeys = []struct {
	name string
	set  func(*Settings, string) error
}{
	{"TEKEN_BROKER", func(s *Settings, v string) error { s.Brokers = splitList(v); return nil }},
	{"TEKEN_CA", func(s *Settings, v string) error { s.CA = v; return nil }},
	{"TEKEN_CERT", func(s *Settings, v string) error { s.Cert = v; return nil }},
	{"TEKEN_KEY", func(s *Settings, v string) error { s.Key = v; return nil }},
	{"TEKEN_DISPATCHER_KEY", func(s *Settings, v string) error { s.DispatcherKey = v; return nil }},
	{"TEKEN_ROOT", func(s *Settings, v string) error { s.Root = v; return nil }},
	{"TEKEN_SIGNER_CA", func(s *Settings, v string) error { s.SignerCA = v; return nil }},
	{"TEKEN_TERMINAL", func(s *Settings, v string) error { s.Terminal = v; return nil }},
	{"TEKEN_USERNAME", func(s *Settings, v string) error { s.Username = v; return nil }},
	{"TEKEN_PASSWORD", func(s *Settings, v string) error { s.Password = v; return nil }},
	{"TEKEN_MAX_MESSAGE_BYTES", func(s *Settings, v string) (err error) {
		s.MaxMessageBytes, err = parseBytes(v)
		return err
	}},
}

// parseBytes reads a positive byte count.
func parseBytes(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive number of bytes", v)
	}
	return n, nil
}

// EnvNames lists the environment variables Load reads, for help texts.
func EnvNames() []string {
	names := []string{"TEKEN_CONFIG"}
	for _, k := range envKeys {
		names = append(names, k.name)
	}
	return names
}

// ConfigPath returns the config file Load reads and whether it was named
// explicitly (TEKEN_CONFIG): an explicit file must exist, the default one
// ($XDG_CONFIG_HOME or ~/.config, then teken/tekenctl.toml) need not.
func ConfigPath(getenv func(string) string) (path string, explicit bool) {
	if p := getenv("TEKEN_CONFIG"); p != "" {
		return p, true
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "teken", "tekenctl.toml"), false
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "teken", "tekenctl.toml"), false
	}
	return "", false
}

// Load reads the config file (see ConfigPath; configFlag, when set, names
// it instead) and lays the environment over it.
func Load(getenv func(string) string, configFlag string) (Settings, error) {
	var s Settings
	path, explicit := ConfigPath(getenv)
	if configFlag != "" {
		path, explicit = configFlag, true
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		switch {
		case err == nil:
			if s, err = ParseConfig(raw); err != nil {
				return Settings{}, fmt.Errorf("config %s: %w", path, err)
			}
		case errors.Is(err, os.ErrNotExist) && !explicit:
		default:
			return Settings{}, fmt.Errorf("config: %w", err)
		}
	}
	for _, k := range envKeys {
		if v := getenv(k.name); v != "" {
			if err := k.set(&s, v); err != nil {
				return Settings{}, fmt.Errorf("%s: %w", k.name, err)
			}
		}
	}
	return s, nil
}

// ParseConfig decodes a TOML config file. broker may be one URL, a
// comma-separated list or an array; an unknown key is an error naming it.
func ParseConfig(raw []byte) (Settings, error) {
	var f struct {
		Settings
		Broker any `toml:"broker"`
	}
	md, err := toml.Decode(string(raw), &f)
	if err != nil {
		return Settings{}, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Settings{}, fmt.Errorf("unknown key %q", und[0].String())
	}
	s := f.Settings
	switch b := f.Broker.(type) {
	case nil:
	case string:
		s.Brokers = splitList(b)
	case []any:
		for _, u := range b {
			str, ok := u.(string)
			if !ok {
				return Settings{}, fmt.Errorf("broker: %v is not a string", u)
			}
			s.Brokers = append(s.Brokers, splitList(str)...)
		}
	default:
		return Settings{}, fmt.Errorf("broker: want a URL or a list of URLs, got %T", b)
	}
	return s, nil
}

// Override lays flag values over s; an empty value leaves the field alone.
func (s *Settings) Override(o Settings) {
	if len(o.Brokers) > 0 {
		s.Brokers = o.Brokers
	}
	for _, f := range []struct{ dst, src *string }{
		{&s.CA, &o.CA}, {&s.Cert, &o.Cert}, {&s.Key, &o.Key},
		{&s.DispatcherKey, &o.DispatcherKey}, {&s.Root, &o.Root},
		{&s.SignerCA, &o.SignerCA}, {&s.Terminal, &o.Terminal},
		{&s.Username, &o.Username}, {&s.Password, &o.Password},
	} {
		if *f.src != "" {
			*f.dst = *f.src
		}
	}
	if o.MaxMessageBytes > 0 {
		s.MaxMessageBytes = o.MaxMessageBytes
	}
}

// TopicRoot returns the topic root to use.
func (s Settings) TopicRoot() string {
	if s.Root == "" {
		return api.DefaultRoot
	}
	return s.Root
}

// Connection returns the broker connection for clientID, with TLS when a CA
// is set or a broker URL asks for it.
func (s Settings) Connection(clientID string) (transport.Connection, error) {
	if len(s.Brokers) == 0 {
		return transport.Connection{}, errors.New("no broker: set --broker, TEKEN_BROKER or broker in the config file")
	}
	if err := api.ValidRoot(s.TopicRoot()); err != nil {
		return transport.Connection{}, err
	}
	c := transport.Connection{Brokers: s.Brokers, ClientID: clientID, Username: s.Username, Password: s.Password, Logger: s.Logger}
	secure := false
	for _, b := range s.Brokers {
		if strings.HasPrefix(b, "ssl://") || strings.HasPrefix(b, "tls://") || strings.HasPrefix(b, "mqtts://") {
			secure = true
		}
	}
	if s.CA != "" || secure {
		if s.CA == "" {
			return transport.Connection{}, errors.New("a TLS broker needs a CA: set --ca, TEKEN_CA or ca in the config file")
		}
		tc, err := transport.TLSConfig(s.CA, s.Cert, s.Key)
		if err != nil {
			return transport.Connection{}, err
		}
		c.TLS = tc
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// randomClientID returns a client id for a short-lived connection.
func randomClientID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return prefix + "-" + hex.EncodeToString(b[:])
}
