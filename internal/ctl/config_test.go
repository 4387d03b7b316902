package ctl

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Settings
		err      string
	}{
		{"empty", "", Settings{}, ""},
		{"one broker", `broker = "tcp://127.0.0.1:1883"`, Settings{Brokers: []string{"tcp://127.0.0.1:1883"}}, ""},
		{"comma list", `broker = "ssl://a:8883, ssl://b:8883"`, Settings{Brokers: []string{"ssl://a:8883", "ssl://b:8883"}}, ""},
		{"array", `broker = ["ssl://a:8883", "ssl://b:8883"]`, Settings{Brokers: []string{"ssl://a:8883", "ssl://b:8883"}}, ""},
		{"all keys", "ca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\ndispatcher_key = \"d.key\"\nroot = \"x/v1\"\nsigner_ca = \"s.pem\"\nterminal = \"t-1\"\nusername = \"u\"\npassword = \"p\"",
			Settings{CA: "ca.pem", Cert: "c.pem", Key: "k.pem", DispatcherKey: "d.key", Root: "x/v1", SignerCA: "s.pem", Terminal: "t-1", Username: "u", Password: "p"}, ""},
		{"unknown key", `brokr = "x"`, Settings{}, `unknown key "brokr"`},
		{"broker number", `broker = 5`, Settings{}, "want a URL"},
		{"broker array of numbers", `broker = [5]`, Settings{}, "not a string"},
		{"not toml", `broker = `, Settings{}, "expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "teken", "tekenctl.toml")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("broker = \"tcp://file:1883\"\nroot = \"file/v1\"\nca = \"file-ca.pem\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		flag    string
		over    Settings
		want    Settings
		wantErr bool
	}{
		{"default file via XDG", map[string]string{"XDG_CONFIG_HOME": dir}, "", Settings{},
			Settings{Brokers: []string{"tcp://file:1883"}, Root: "file/v1", CA: "file-ca.pem"}, false},
		{"default file missing is fine", map[string]string{"HOME": t.TempDir()}, "", Settings{}, Settings{}, false},
		{"explicit file missing is an error", map[string]string{"TEKEN_CONFIG": filepath.Join(dir, "nope.toml")}, "", Settings{}, Settings{}, true},
		{"env over file", map[string]string{"TEKEN_CONFIG": conf, "TEKEN_BROKER": "tcp://env:1883", "TEKEN_CA": "env-ca.pem"}, "", Settings{},
			Settings{Brokers: []string{"tcp://env:1883"}, Root: "file/v1", CA: "env-ca.pem"}, false},
		{"flag over env over file", map[string]string{"TEKEN_CONFIG": conf, "TEKEN_BROKER": "tcp://env:1883", "TEKEN_ROOT": "env/v1"}, "",
			Settings{Brokers: []string{"tcp://flag:1883"}},
			Settings{Brokers: []string{"tcp://flag:1883"}, Root: "env/v1", CA: "file-ca.pem"}, false},
		{"config flag over TEKEN_CONFIG", map[string]string{"TEKEN_CONFIG": filepath.Join(dir, "nope.toml")}, conf, Settings{},
			Settings{Brokers: []string{"tcp://file:1883"}, Root: "file/v1", CA: "file-ca.pem"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(func(k string) string { return tc.vars[k] }, tc.flag)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Override(tc.over)
			if !reflect.DeepEqual(s, tc.want) {
				t.Errorf("got %+v, want %+v", s, tc.want)
			}
		})
	}
}

func TestConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		err  string
		tls  bool
	}{
		{"no broker", Settings{}, "no broker", false},
		{"plain", Settings{Brokers: []string{"tcp://127.0.0.1:1883"}}, "", false},
		{"tls without CA", Settings{Brokers: []string{"ssl://broker:8883"}}, "needs a CA", false},
		{"bad root", Settings{Brokers: []string{"tcp://x:1"}, Root: "a/+/b"}, "wildcard", false},
		{"missing CA file", Settings{Brokers: []string{"ssl://broker:8883"}, CA: "/nonexistent/ca.pem"}, "read CA", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.s.Connection("id")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c.TLS != nil) != tc.tls || c.ClientID != "id" {
				t.Errorf("connection %+v", c)
			}
		})
	}
}

// TestConnectionLogger: the connection logs where the command asked, and
// the config file cannot name a logger.
func TestConnectionLogger(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	c, err := Settings{Brokers: []string{"tcp://127.0.0.1:1"}, Logger: log}.Connection("id")
	if err != nil {
		t.Fatal(err)
	}
	if c.Logger != log {
		t.Errorf("connection logger %p, want %p", c.Logger, log)
	}
	if _, err := ParseConfig([]byte(`logger = "x"`)); err == nil || !strings.Contains(err.Error(), `unknown key "logger"`) {
		t.Errorf("logger in the file: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`broker = "tcp://127.0.0.1:1883"`))
	f.Add([]byte(`broker = ["a", "b"]` + "\nroot = \"x\""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := ParseConfig(raw)
		if err != nil {
			return
		}
		for _, b := range s.Brokers {
			if b == "" || strings.TrimSpace(b) != b {
				t.Fatalf("broker %q not trimmed", b)
			}
		}
	})
}
