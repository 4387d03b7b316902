package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// TestTLSBrokerFromConfigFile reaches a TLS broker that wants a client
// certificate, with the settings in a config file and one overridden by the
// environment, and checks that a wrong CA is refused in one line.
func TestTLSBrokerFromConfigFile(t *testing.T) {
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true})
	dir := t.TempDir()
	conf := filepath.Join(dir, "tekenctl.toml")
	body := "broker = \"" + m.URL + "\"\nca = \"/nonexistent/overridden-by-env.pem\"\ncert = \"" + m.Client.CertFile + "\"\nkey = \"" + m.Client.KeyFile + "\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{"TEKEN_CONFIG": conf, "TEKEN_CA": m.CA.CertFile}
	c := tekenctl(t, ctx, vars, "fleet", "--json", "--quiet", "100ms")
	if c.code != exitOK || strings.TrimSpace(c.stdout) != "[]" {
		t.Fatalf("fleet over TLS: %+v", c)
	}
	other := testenv.NewCA(t, "another CA")
	vars["TEKEN_CA"] = other.CertFile
	c = tekenctl(t, ctx, vars, "fleet", "--quiet", "100ms")
	if c.code != exitFailure || strings.Count(c.stderr, "\n") != 1 || !strings.Contains(c.stderr, "certificate") {
		t.Errorf("fleet with the wrong CA: %+v", c)
	}
}
