package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/testenv"
)

// sample writes the shipped configuration into a directory of the test,
// its /etc/teken paths pointing there, with the files an enrolment puts
// beside it when withFiles is set.
func sample(t *testing.T, withFiles bool) string {
	t.Helper()
	raw, err := os.ReadFile("../../packaging/tekend.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tekend.toml")
	write(t, path, strings.ReplaceAll(string(raw), "/etc/teken/", dir+"/"))
	if withFiles {
		key, err := api.GenerateKey(api.AlgES256)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := api.MarshalPublicKeyPEM(key.Public())
		write(t, filepath.Join(dir, "dispatcher.pub"), string(pub))
		ca, err := os.ReadFile(testenv.NewCA(t, "broker CA").CertFile)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "broker-ca.pem"), string(ca))
	}
	return path
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckConfigCommand(t *testing.T) {
	untouched, enrolled := sample(t, false), sample(t, true)
	dir := filepath.Dir(untouched)
	good := filepath.Join(filepath.Dir(enrolled), "good.toml")
	raw, _ := os.ReadFile(enrolled)
	write(t, good, strings.NewReplacer(`"kendari-setda-01"`, `"sultra-test-01"`, "mqtt.example.go.id", "mqtt.sultraprov.go.id").Replace(string(raw)))

	warnTerminal := `tekend: warning: terminal_id = "kendari-setda-01": the sample's id`
	warnBroker := `tekend: warning: broker.urls[0] = "ssl://mqtt.example.go.id:8883": mqtt.example.go.id is a placeholder`
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string   // a substring; "" means empty
		stderr     []string // its lines, each starting with one of these, in order
		stderrNone string   // must not appear on stderr
	}{
		{"untouched sample", []string{"-config", untouched, "check-config"}, 1, "", []string{
			"tekend: error: dispatcher.key_files: open " + dir + "/dispatcher.pub: no such file or directory",
			"tekend: error: broker.ca_file: open " + dir + "/broker-ca.pem: no such file or directory",
			warnTerminal, warnBroker,
			"tekend: " + untouched + ": 2 errors, 2 warnings: tekend run would refuse it",
		}, ""},
		{"enrolled sample with placeholders", []string{"-config", enrolled, "check-config"}, 0, `terminal_id = "kendari-setda-01"`,
			[]string{warnTerminal, warnBroker}, ""},
		{"enrolled sample with placeholders, strict", []string{"check-config", "--config", enrolled, "--strict"}, 1, "",
			[]string{warnTerminal, warnBroker, "tekend: " + enrolled + ": 0 errors, 2 warnings: warnings fail with --strict"}, ""},
		{"good, strict", []string{"-config", good, "check-config", "-strict"}, 0, `terminal_id = "sultra-test-01"`, nil, ""},
		{"missing configuration", []string{"-config", filepath.Join(dir, "none.toml"), "check-config"}, 1, "", []string{
			"tekend: error: open configuration: open " + filepath.Join(dir, "none.toml") + ": no such file or directory",
			"tekend: " + filepath.Join(dir, "none.toml") + ": 1 error, 0 warnings",
		}, ""},
		{"help", []string{"check-config", "--help"}, 0, "Usage: tekend [-config FILE] check-config [--strict]", nil, ""},
		{"stray argument", []string{"check-config", "now"}, 2, "", []string{"Usage: tekend [-config FILE] check-config"}, "tekend: error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.code, errb.String())
			}
			if tc.stdout == "" && out.Len() > 0 && tc.code != 0 {
				t.Errorf("stdout not empty:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out.String())
			}
			lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
			if len(tc.stderr) > 0 && tc.code != 2 && len(lines) != len(tc.stderr) {
				t.Errorf("stderr has %d lines, want %d:\n%s", len(lines), len(tc.stderr), errb.String())
			}
			for i, want := range tc.stderr {
				if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
					t.Errorf("stderr line %d: want it to start with %q:\n%s", i, want, errb.String())
				}
			}
			if tc.stderr == nil && errb.Len() > 0 {
				t.Errorf("stderr not empty:\n%s", errb.String())
			}
			if tc.stderrNone != "" && strings.Contains(errb.String(), tc.stderrNone) {
				t.Errorf("stderr has %q:\n%s", tc.stderrNone, errb.String())
			}
			if code == 0 && tc.stdout != "" && !strings.HasPrefix(tc.stdout, "Usage") {
				// The effective configuration reads back as it was.
				if _, err := daemon.ParseConfig(strings.NewReader(out.String())); err != nil {
					t.Errorf("printed configuration does not parse: %v", err)
				}
			}
		})
	}
}
