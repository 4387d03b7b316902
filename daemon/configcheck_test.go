package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

func errorLines(errs []error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

// startPCSCD gives Open a pcscd of the test's own. It must come before
// this process first talks to pcscd: libpcsclite keeps the socket path it
// found then (see testenv.StartPCSCD), and every later test needs the
// private one.
func startPCSCD(t *testing.T) { testenv.StartPCSCD(t) }

func TestCheckConfigAcceptsAnEnrolledTerminal(t *testing.T) {
	f := newTerminalFiles(t)
	cfg := f.config(t)
	c := CheckConfig(cfg)
	if len(c.Errors) > 0 || len(c.Warnings) > 0 || c.Failed(true) {
		t.Fatalf("errors %q, warnings %v", errorLines(c.Errors), c.Warnings)
	}
	// And tekend opens with it: the check is not stricter than run about
	// the files.
	startPCSCD(t)
	d, err := Open(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open refuses what the check accepts: %v", err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// refusal is a configuration with one fault and the errors the check
// must give for it.
type refusal struct {
	name   string
	adjust func(*Config)
	want   []string // each a substring of one error, in order
}

// TestCheckConfigRefuses gives each file its own fault; the check must name
// it with the field.
func TestCheckConfigRefuses(t *testing.T) {
	f := newTerminalFiles(t)
	for _, tc := range refusals(t, f) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(t)
			tc.adjust(&cfg)
			c := CheckConfig(cfg)
			got := errorLines(c.Errors)
			if len(got) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d, each containing in order:\n%s", strings.Join(got, "\n"), len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], w)
				}
			}
			if !c.Failed(false) {
				t.Error("Failed(false) = false with errors")
			}
		})
	}
}

// TestRunRefusesWhatTheCheckRefuses opens tekend with each faulty
// configuration: it must refuse, with errors the check gave, in the same
// words.
func TestRunRefusesWhatTheCheckRefuses(t *testing.T) {
	f := newTerminalFiles(t)
	startPCSCD(t)
	for _, tc := range refusals(t, f) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(t)
			tc.adjust(&cfg)
			runRefusesTheSame(t, cfg, errorLines(CheckConfig(cfg).Errors))
		})
	}
}

func refusals(t *testing.T, f *terminalFiles) []refusal {
	missing := filepath.Join(f.dir, "missing.pem")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPub := f.file(t, "rsa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	sec1Key := f.file(t, "dispatcher-ec.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})))
	damaged := f.file(t, "damaged.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})))
	notPEM := f.file(t, "not.pem", "hello\n")
	caAndKey := f.file(t, "ca-and-key.pem", string(certPEM(mustReadCert(t, f.signerCA)))+mustRead(t, f.clientKey))

	return []refusal{
		{"dispatcher key missing", func(c *Config) { c.Dispatcher.KeyFiles = []string{missing} },
			[]string{"dispatcher.key_files: open " + missing + ": no such file or directory"}},
		{"dispatcher private key (PKCS#8) as public key", func(c *Config) { c.Dispatcher.KeyFiles = []string{f.dispatcherKey} },
			[]string{"dispatcher.key_files: " + f.dispatcherKey + ` holds a private key (PEM "PRIVATE KEY"), not a public key`}},
		{"dispatcher private key (SEC 1) as public key", func(c *Config) { c.Dispatcher.KeyFiles = []string{sec1Key} },
			[]string{"dispatcher.key_files: " + sec1Key + ` holds a private key (PEM "EC PRIVATE KEY"), not a public key`}},
		{"dispatcher key is a certificate", func(c *Config) { c.Dispatcher.KeyFiles = []string{f.signerCA} },
			[]string{"dispatcher.key_files: " + f.signerCA + `: public key: PEM block "CERTIFICATE", want PUBLIC KEY`}},
		{"dispatcher key of the wrong kind (RSA)", func(c *Config) { c.Dispatcher.KeyFiles = []string{rsaPub} },
			[]string{"dispatcher.key_files: " + rsaPub + ": public key: key type *rsa.PublicKey: want ECDSA P-256 or Ed25519"}},
		{"dispatcher key not PEM", func(c *Config) { c.Dispatcher.KeyFiles = []string{notPEM} },
			[]string{"dispatcher.key_files: " + notPEM + ": public key: no PEM PUBLIC KEY block"}},
		{"two bad dispatcher keys and a bad signer CA, all named", func(c *Config) {
			c.Dispatcher.KeyFiles = []string{missing, f.dispatcherPub, f.dispatcherKey}
			c.Signing.SignerCAFiles = []string{notPEM}
		}, []string{"dispatcher.key_files: open " + missing, "dispatcher.key_files: " + f.dispatcherKey + " holds a private key",
			"signing.signer_ca_files: " + notPEM + " holds no PEM certificate"}},
		{"signer CA missing", func(c *Config) { c.Signing.SignerCAFiles = []string{f.signerCA, missing} },
			[]string{"signing.signer_ca_files: open " + missing + ": no such file or directory"}},
		{"signer CA damaged", func(c *Config) { c.Signing.SignerCAFiles = []string{damaged} },
			[]string{"signing.signer_ca_files: " + damaged + ": certificate 1: x509: "}},
		{"signer CA file with a private key", func(c *Config) { c.Signing.SignerCAFiles = []string{caAndKey} },
			[]string{"signing.signer_ca_files: " + caAndKey + ` holds a private key (PEM "PRIVATE KEY"); want certificates only`}},
		{"broker CA missing", func(c *Config) { c.Broker.CAFile = missing },
			[]string{"broker.ca_file: open " + missing + ": no such file or directory"}},
		{"broker CA not PEM", func(c *Config) { c.Broker.CAFile = notPEM },
			[]string{"broker.ca_file: " + notPEM + " holds no PEM certificate"}},
		{"TLS broker without CA", func(c *Config) { c.Broker.CAFile = "" },
			[]string{`broker.ca_file = "": required for the TLS broker ssl://mqtt.sultraprov.go.id:8883`}},
		{"client certificate missing", func(c *Config) { c.Broker.CertFile = missing },
			[]string{"broker.cert_file: open " + missing + ": no such file or directory"}},
		{"client key missing", func(c *Config) { c.Broker.KeyFile = missing },
			[]string{"broker.key_file: open " + missing + ": no such file or directory"}},
		{"client certificate and key do not match", func(c *Config) { c.Broker.KeyFile = f.otherKey },
			[]string{"broker.key_file: " + f.otherKey + " with broker.cert_file " + f.clientCert + ": tls: private key does not match public key"}},
		{"client key file holds a certificate", func(c *Config) { c.Broker.KeyFile = f.clientCert },
			[]string{"broker.key_file: " + f.clientCert + " holds no PEM private key"}},
		{"password file missing", func(c *Config) { c.Broker.PasswordFile = missing },
			[]string{"broker.password_file: open " + missing + ": no such file or directory"}},
		{"password file empty", func(c *Config) { c.Broker.PasswordFile = f.file(t, "empty", " \n") },
			[]string{"broker.password_file: " + filepath.Join(f.dir, "empty") + " is empty"}},
		{"password file of two lines", func(c *Config) { c.Broker.PasswordFile = f.file(t, "two", "user\npass\n") },
			[]string{"broker.password_file: " + filepath.Join(f.dir, "two") + " holds more than one line"}},
		{"web config missing", func(c *Config) { c.Metrics.WebConfig = missing },
			[]string{"metrics.web_config: open " + missing + ": no such file or directory"}},
		{"web config with an unknown key", func(c *Config) { c.Metrics.WebConfig = f.file(t, "typo.yml", "basic_auth_user: {}\n") },
			[]string{"metrics.web_config: " + filepath.Join(f.dir, "typo.yml") + ": yaml: unmarshal errors"}},
		{"web config naming a missing certificate", func(c *Config) {
			c.Metrics.WebConfig = f.file(t, "nocert.yml", "tls_server_config:\n  cert_file: "+missing+"\n  key_file: "+f.clientKey+"\n")
		}, []string{"metrics.web_config: " + filepath.Join(f.dir, "nocert.yml") + ": failed to read cert_file (" + missing + ")"}},
		{"an invalid field and a missing file, both", func(c *Config) {
			c.Kiosk.Language = "fr"
			c.Dispatcher.KeyFiles = []string{missing}
		}, []string{`kiosk.language = "fr"`, "dispatcher.key_files: open " + missing}},
	}
}

// runRefusesTheSame opens tekend with cfg: it must refuse, with errors the
// check gave, in the same words.
func runRefusesTheSame(t *testing.T, cfg Config, checked []string) {
	t.Helper()
	d, err := Open(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_ = d.Close(context.Background())
		t.Fatalf("tekend opened with a configuration the check refuses:\n%s", strings.Join(checked, "\n"))
	}
	said := strings.Join(checked, "\n")
	if run := strings.TrimPrefix(err.Error(), "invalid configuration: "); !strings.Contains(said, run) {
		t.Errorf("run refuses with\n%s\nwhich the check did not say; it said:\n%s", run, said)
	}
}

func TestCheckConfigWarnings(t *testing.T) {
	f := newTerminalFiles(t)
	cases := []struct {
		name   string
		adjust func(*Config)
		want   string // the one warning's text
	}{
		{"sample terminal id", func(c *Config) { c.TerminalID = "kendari-setda-01" },
			`terminal_id = "kendari-setda-01": the sample's id`},
		{"sample client id", func(c *Config) { c.Broker.ClientID = "teken-kendari-setda-01" },
			`broker.client_id = "teken-kendari-setda-01": the sample terminal's client id`},
		{"example broker host", func(c *Config) {
			c.Broker.URLs = []string{"ssl://mqtt.sultraprov.go.id:8883", "ssl://mqtt.example.go.id:8883"}
		}, `broker.urls[1] = "ssl://mqtt.example.go.id:8883": mqtt.example.go.id is a placeholder`},
		{"example.com broker", func(c *Config) { c.Broker.URLs = []string{"mqtts://broker.example.com:8883"} },
			`broker.urls[0] = "mqtts://broker.example.com:8883": broker.example.com is a placeholder`},
		{".invalid broker", func(c *Config) { c.Broker.URLs = []string{"tls://mqtt.invalid:8883"} },
			`broker.urls[0] = "tls://mqtt.invalid:8883": mqtt.invalid is a placeholder`},
		{"example TSA", func(c *Config) { c.Signing.TSAURL = "https://tsa.example.go.id/tsr" },
			`signing.tsa_url = "https://tsa.example.go.id/tsr": tsa.example.go.id is a placeholder`},
		{"example metrics host", func(c *Config) { c.Metrics.AllowedHosts = []string{"10.20.1.17", "kendari.example.go.id"} },
			`metrics.allowed_hosts = "kendari.example.go.id": a placeholder`},
		{"the sample's metrics host", func(c *Config) { c.Metrics.AllowedHosts = []string{"kendari-setda-01.pemprov.go.id", "10.20.1.17"} },
			`metrics.allowed_hosts = "kendari-setda-01.pemprov.go.id": a placeholder`},
		{"plain MQTT over the network", func(c *Config) {
			c.Broker.URLs = []string{"ssl://mqtt.sultraprov.go.id:8883", "tcp://10.20.0.5:1883"}
		}, `broker.urls[1] = "tcp://10.20.0.5:1883": plain MQTT`},
		{"TLS files without a TLS broker", func(c *Config) {
			c.Broker.URLs = []string{"tcp://127.0.0.1:1883"}
			c.Broker.CertFile, c.Broker.KeyFile = "", ""
		}, `broker.ca_file = "` + f.brokerCA + `": not used: no broker URL is ssl://, tls:// or mqtts://`},
		{"password without user name", func(c *Config) { c.Broker.Username = "" },
			`broker.password_file = "` + f.password + `": not used without broker.username`},
		{"expired signer CA", func(c *Config) { c.Signing.SignerCAFiles = []string{f.signerCA, f.expiredCA} },
			`signing.signer_ca_files = "` + f.expiredCA + `": certificate "Old CA" expired on `},
		{"expired client certificate", func(c *Config) { c.Broker.CertFile, c.Broker.KeyFile = f.expiredClientCert, f.expiredClientKey },
			`broker.cert_file = "` + f.expiredClientCert + `": certificate "old terminal" expired on `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(t)
			tc.adjust(&cfg)
			c := CheckConfig(cfg)
			if len(c.Errors) > 0 {
				t.Fatalf("errors: %q", errorLines(c.Errors))
			}
			if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), tc.want) {
				t.Fatalf("warnings %v, want one containing %q", c.Warnings, tc.want)
			}
			if c.Failed(false) {
				t.Error("a warning fails without --strict")
			}
			if !c.Failed(true) {
				t.Error("a warning passes with --strict")
			}
		})
	}
}

// The shipped sample names files an enrolment puts in /etc/teken and
// placeholders: refused while the files are missing, and warned about for
// its placeholders once they are there.
func TestCheckShippedSample(t *testing.T) {
	raw, err := os.ReadFile("../packaging/tekend.toml")
	if err != nil {
		t.Fatal(err)
	}
	f := newTerminalFiles(t)
	etc := t.TempDir()
	sample := filepath.Join(etc, "tekend.toml")
	writeFile(t, sample, []byte(strings.ReplaceAll(string(raw), "/etc/teken/", etc+"/")))

	wantWarnings := []string{
		`terminal_id = "kendari-setda-01": the sample's id`,
		`broker.urls[0] = "ssl://mqtt.example.go.id:8883": mqtt.example.go.id is a placeholder`,
	}
	checkWarnings := func(c *ConfigCheck) {
		t.Helper()
		if len(c.Warnings) != len(wantWarnings) {
			t.Fatalf("warnings %v, want %d", c.Warnings, len(wantWarnings))
		}
		for i, w := range wantWarnings {
			if !strings.Contains(c.Warnings[i].Error(), w) {
				t.Errorf("warning %d = %q, want %q", i, c.Warnings[i], w)
			}
		}
	}

	c := CheckConfigFile(sample)
	wantErrors := []string{
		"dispatcher.key_files: open " + etc + "/dispatcher.pub: no such file or directory",
		"broker.ca_file: open " + etc + "/broker-ca.pem: no such file or directory",
	}
	if got := errorLines(c.Errors); !slices.Equal(got, wantErrors) {
		t.Errorf("untouched sample: errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantErrors, "\n"))
	}
	checkWarnings(c)

	// Enrolled files in place, placeholders left: tekend would run, but
	// --strict (the package's postinst) fails.
	writeFile(t, filepath.Join(etc, "dispatcher.pub"), []byte(mustRead(t, f.dispatcherPub)))
	writeFile(t, filepath.Join(etc, "broker-ca.pem"), []byte(mustRead(t, f.brokerCA)))
	c = CheckConfigFile(sample)
	if len(c.Errors) > 0 {
		t.Fatalf("sample with its files: errors %q", errorLines(c.Errors))
	}
	checkWarnings(c)
	if c.Failed(false) || !c.Failed(true) {
		t.Errorf("sample with its files: Failed(false) = %v, Failed(true) = %v; want false, true", c.Failed(false), c.Failed(true))
	}
}

func TestCheckConfigFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"missing", "", "open configuration: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"typo", "terminal = \"x\"\n", "unknown keys: terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if tc.content != "" {
				writeFile(t, p, []byte(tc.content))
			}
			c := CheckConfigFile(p)
			if c.Parsed || len(c.Errors) != 1 || !strings.Contains(c.Errors[0].Error(), tc.want) {
				t.Fatalf("Parsed %v, errors %q; want one containing %q", c.Parsed, errorLines(c.Errors), tc.want)
			}
			_, err := LoadConfig(p)
			if err == nil || err.Error() != c.Errors[0].Error() {
				t.Errorf("LoadConfig = %v, want the check's %v", err, c.Errors[0])
			}
		})
	}
}

func TestPlaceholderHost(t *testing.T) {
	for host, want := range map[string]bool{
		"mqtt.example.go.id": true, "example.com": true, "EXAMPLE.org.": true, "broker.example": true,
		"x.invalid": true, "mqtt.sultraprov.go.id": false, "examples.go.id": false, "": false, "10.0.0.1": false,
		"myexample.com": false,
	} {
		if got := placeholderHost(host); got != want {
			t.Errorf("placeholderHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCheckSignerCertificate(t *testing.T) {
	f := newTerminalFiles(t)
	cfg := f.config(t)
	ca, caKey := makeCert(t, "Signer CA 2", nil, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	cfg.Signing.SignerCAFiles = []string{f.file(t, "ca2.pem", string(certPEM(ca)))}
	good, _ := makeCert(t, "Siti", ca, caKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	other, otherKey := makeCert(t, "Another CA", nil, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	stranger, _ := makeCert(t, "Budi", other, otherKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want string
	}{
		{"good", good, time.Now(), ""},
		{"expired", good, time.Now().Add(2 * time.Hour), "certificate expired on "},
		{"not yet valid", good, time.Now().Add(-2 * time.Hour), "certificate not valid before "},
		{"other CA", stranger, time.Now(), "does not chain to the CAs of signing.signer_ca_files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSignerCertificate(cfg, tc.cert, tc.now)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckSignerCertificate = %v, want %q", err, tc.want)
			}
		})
	}
}
