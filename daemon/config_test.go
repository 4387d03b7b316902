package daemon

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestPackagedExampleIsValid(t *testing.T) {
	f, err := os.Open("../packaging/tekend.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("packaged example does not validate: %v", err)
	}
	if cfg.ClientID() != "teken-kendari-setda-01" {
		t.Errorf("ClientID() = %q", cfg.ClientID())
	}
}

// Every field must be documented in the packaged example, so IT can find it.
func TestPackagedExampleDocumentsEveryField(t *testing.T) {
	raw, err := os.ReadFile("../packaging/tekend.toml")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if f.Type.Kind() == reflect.Struct {
				if !strings.Contains(string(raw), "["+key+"]") {
					t.Errorf("section [%s] not in packaging/tekend.toml", key)
				}
				walk(key+".", f.Type)
				continue
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				// An array of tables: [[section.key]] and its own keys.
				table := prefix + key
				if !strings.Contains(string(raw), "[["+table+"]]") {
					t.Errorf("array of tables [[%s]] not in packaging/tekend.toml", table)
				}
				walk(table+".", f.Type.Elem())
				continue
			}
			re := regexp.MustCompile(`(?m)^#?` + regexp.QuoteMeta(key) + ` = `)
			if !re.Match(raw) {
				t.Errorf("field %s%s not documented in packaging/tekend.toml", prefix, key)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func TestValidateNamesFieldAndValue(t *testing.T) {
	cases := []struct {
		name  string
		toml  string
		field string
	}{
		{"bad terminal", `terminal_id = "Kendari 01"`, `terminal_id = "Kendari 01"`},
		{"kiosk on network", `[kiosk]` + "\n" + `listen = "0.0.0.0:8470"`, `kiosk.listen = "0.0.0.0:8470"`},
		{"language", `[kiosk]` + "\n" + `language = "fr"`, `kiosk.language = "fr"`},
		{"broker scheme", `[broker]` + "\n" + `urls = ["http://x:1"]`, `broker.urls[0] = "http://x:1"`},
		{"batch", `[signing]` + "\n" + `max_batch = 0`, `signing.max_batch = "0"`},
		{"half tls", `[broker]` + "\n" + `cert_file = "/c.pem"`, `broker.cert_file`},
		{"no keys", ``, `dispatcher.key_files`},
		{"retention", `[store]` + "\n" + `retention = "1m"`, `store.retention = "1m0s"`},
		{"tls broker without CA", `[broker]` + "\n" + `urls = ["ssl://mqtt.example.go.id:8883"]`, `broker.ca_file`},
		{"tls:// without CA", `[broker]` + "\n" + `urls = ["tcp://a:1883", "tls://b:8883"]`, `broker.ca_file`},
		{"mqtts:// without CA", `[broker]` + "\n" + `urls = ["mqtts://b:8883"]`, `broker.ca_file`},
		{"log level", `log_level = "loud"`, `log_level = "loud"`},
		{"metrics host with port", `[metrics]` + "\n" + `allowed_hosts = ["a.example:9470"]`, `metrics.allowed_hosts = "a.example:9470"`},
		{"pdf budget", `[signing]` + "\n" + `pdf_max_decompressed_bytes = 10`, `signing.pdf_max_decompressed_bytes = "10"`},
		// The levels need what they are made of.
		{"unknown level", `[signing]` + "\n" + `level = "B-LTV"`, `signing.level = "B-LTV"`},
		{"B-T without an authority", `[signing]` + "\n" + `level = "B-T"`, `signing.level = "B-T": B-T needs a timestamp authority`},
		{"B-LT without revocation", "[signing]\nlevel = \"B-LT\"\ntsa_url = \"http://127.0.0.1:9/\"\n[revocation]\ncheck = \"off\"", `B-LT needs revocation data`},
		{"authority url", "[[tsa.authority]]\nurl = \"ftp://tsa\"", `tsa.authority[0].url = "ftp://tsa"`},
		{"user without password", "[[tsa.authority]]\nurl = \"https://tsa.a\"\nusername = \"u\"", `tsa.authority[0].username = "u"`},
		{"client certificate over http", "[[tsa.authority]]\nurl = \"http://tsa.a\"\ncert_file = \"/c\"\nkey_file = \"/k\"", `need an https URL`},
		{"policy", "[tsa]\npolicy = \"1.2.x\"", `tsa.policy = "1.2.x"`},
		{"skew", "[tsa]\nmax_skew = \"2h\"", `tsa.max_skew = "2h0m0s"`},
		{"revocation check", "[revocation]\ncheck = \"maybe\"", `revocation.check = "maybe"`},
		{"responder scheme", "[revocation]\nocsp_responder = \"ldap://x\"", `revocation.ocsp_responder = "ldap://x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(strings.NewReader(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want mention of %s", err, tc.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestParseRefusesUnknownKeys(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("terminal_id = \"a\"\n[kiosk]\nlisten_addr = \"x\"\n"))
	if err == nil || !strings.Contains(err.Error(), "kiosk.listen_addr") {
		t.Fatalf("ParseConfig = %v, want unknown key kiosk.listen_addr", err)
	}
}

func TestParseRefusesBadDuration(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("[status]\nmin_interval = \"soon\"\n"))
	if err == nil {
		t.Fatal("bad duration accepted")
	}
}

// check-config reads the timestamp authorities' files as tekend run does.
func TestCheckConfigReadsTSAFiles(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Signing.TSAURL = "http://127.0.0.1:9/tsa"
	cfg.TSA.Authorities = []TSAAuthorityConfig{{URL: "https://tsa.a/", Username: "u", PasswordFile: "/nonexistent/tsa.password"}}
	cfg.TSA.CAFiles = []string{"/nonexistent/tsa-ca.pem"}
	var msgs []string
	for _, err := range CheckConfig(cfg).Errors {
		msgs = append(msgs, err.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"tsa.authority[0].password_file", "tsa.ca_files"} {
		if !strings.Contains(all, want) {
			t.Errorf("check-config does not name %s:\n%s", want, all)
		}
	}
}
