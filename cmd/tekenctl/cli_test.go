package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/ctl"
)

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			args := []string{name, "--help"}
			c := tekenctl(t, context.Background(), nil, args...)
			if c.code != exitOK || !strings.Contains(c.stdout, "Usage: tekenctl "+name) || !strings.Contains(c.stdout, "Examples:") {
				t.Errorf("%s --help: %+v", name, c)
			}
		})
	}
}

func TestUsageErrorsAreOneLineAndExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"nonsense"}, {"keygen", "--bogus"}, {"dispatch"}, {"verify"}, {"verify", "--sig", "a.p7s"},
		{"audit"}, {"audit", "verify"}, {"token"}, {"token", "sim"}, {"completion", "zsh"}, {"results", "extra"}, {"fleet", "--watch", "-1"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			c := tekenctl(t, context.Background(), nil, args...)
			if c.code != exitUsage {
				t.Errorf("exit %d, want %d", c.code, exitUsage)
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("brokr = \"tcp://x:1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"no broker", nil, []string{"fleet"}, "no broker"},
		{"config typo", map[string]string{"TEKEN_CONFIG": bad}, []string{"fleet"}, `unknown key "brokr"`},
		{"config flag typo", nil, []string{"fleet", "--config", bad}, `unknown key "brokr"`},
		{"missing explicit config", map[string]string{"TEKEN_CONFIG": filepath.Join(dir, "none.toml")}, []string{"fleet"}, "no such file"},
		{"tls broker without CA", map[string]string{"TEKEN_BROKER": "ssl://127.0.0.1:1"}, []string{"fleet"}, "needs a CA"},
		// The flag wins over the environment: the env's broker would connect.
		{"flag over env", map[string]string{"TEKEN_BROKER": "tcp://127.0.0.1:1"}, []string{"fleet", "--broker", "ssl://127.0.0.1:1"}, "needs a CA"},
		{"no dispatcher key", map[string]string{"TEKEN_BROKER": "tcp://127.0.0.1:1"}, []string{"results"}, "no dispatcher key"},
		{"audit missing db", nil, []string{"audit", "verify", "--db", filepath.Join(dir, "none.db")}, "none.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tekenctl(t, context.Background(), tc.vars, tc.args...)
			if c.code != exitFailure || !strings.Contains(c.stderr, tc.want) || strings.Count(c.stderr, "\n") != 1 {
				t.Errorf("want exit 1 and one line with %q: %+v", tc.want, c)
			}
		})
	}
}

func TestCompletionScript(t *testing.T) {
	c := tekenctl(t, context.Background(), nil, "completion", "bash")
	if c.code != exitOK || c.stdout != ctl.BashCompletion || c.stdout == "" {
		t.Fatalf("completion bash: exit %d", c.code)
	}
	// Every command, and only those, is offered.
	_, rest, _ := strings.Cut(c.stdout, `local commands="`)
	offered, _, _ := strings.Cut(rest, `"`)
	names := []string{"version"}
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	if offered != strings.Join(names, " ") {
		t.Errorf("completion offers %q, want %q", offered, strings.Join(names, " "))
	}
}

// TestSettingsHelpNamesEveryVariable: the help lists every environment
// variable Load reads, so a new setting cannot be left out of it.
func TestSettingsHelpNamesEveryVariable(t *testing.T) {
	for _, name := range ctl.EnvNames() {
		if !strings.Contains(envHelp, name) {
			t.Errorf("settings help does not name %s", name)
		}
	}
}
