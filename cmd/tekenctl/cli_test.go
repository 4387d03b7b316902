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

// TestUsageErrors: a mistake is one line saying what is wrong (with the
// closest flag or command, when one is close) and one line saying where the
// help is, on stderr, with exit code 2; nothing on stdout.
func TestUsageErrors(t *testing.T) {
	const (
		topHint      = "Run 'tekenctl --help' for usage."
		commandsHint = "Run 'tekenctl help' for the list of commands."
	)
	hint := func(cmd string) string { return "Run 'tekenctl " + cmd + " --help' for usage." }
	for _, tc := range []struct {
		args       []string
		line, hint string
	}{
		{[]string{"dispatch", "--terminl", "x"}, "tekenctl dispatch: flag provided but not defined: -terminl (did you mean --terminal?)", hint("dispatch")},
		{[]string{"dispatch", "--term", "x"}, "tekenctl dispatch: flag provided but not defined: -term (did you mean --terminal?)", hint("dispatch")},
		{[]string{"dispatch", "--zzz"}, "tekenctl dispatch: flag provided but not defined: -zzz", hint("dispatch")},
		{[]string{"dispatch", "--expires", "2x"}, `tekenctl dispatch: invalid value "2x" for flag -expires: unknown unit "x" (want ns, us, ms, s, m, h or d)`, hint("dispatch")},
		{[]string{"dispatch", "--expires", "-1h"}, `tekenctl dispatch: invalid value "-1h" for flag -expires: a duration cannot be negative`, hint("dispatch")},
		{[]string{"dispatch", "--timeout", "5"}, `tekenctl dispatch: invalid value "5" for flag -timeout: missing unit after 5 (e.g. 30s, 90m, 36h, 7d)`, hint("dispatch")},
		{[]string{"dispatch", "--signer"}, "tekenctl dispatch: flag needs an argument: -signer", hint("dispatch")},
		{[]string{"dispatch"}, "tekenctl dispatch: no terminal (--terminal)", hint("dispatch")},
		{[]string{"dispach"}, `tekenctl: unknown command "dispach" (did you mean "dispatch"?)`, commandsHint},
		{[]string{"nonsense"}, `tekenctl: unknown command "nonsense"`, commandsHint},
		{[]string{"--verbos", "fleet"}, "tekenctl: flag provided but not defined: -verbos (did you mean --verbose?)", topHint},
		{[]string{"--bogus"}, "tekenctl: flag provided but not defined: -bogus", topHint},
		{[]string{"help", "nope"}, `tekenctl help: unknown command "nope"`, commandsHint},
		{[]string{"help", "verfy"}, `tekenctl help: unknown command "verfy" (did you mean "verify"?)`, commandsHint},
		{[]string{"help", "dispatch", "fleet"}, "tekenctl help: want one command, got 2", hint("help")},
		{[]string{"version", "now"}, `tekenctl version: unexpected argument "now"`, hint("version")},
		{[]string{"keygen", "--bogus"}, "tekenctl keygen: flag provided but not defined: -bogus", hint("keygen")},
		{[]string{"keygen"}, "tekenctl keygen: no --out PREFIX", hint("keygen")},
		{[]string{"keygen", "--out", "k", "extra"}, `tekenctl keygen: unexpected argument "extra"`, hint("keygen")},
		{[]string{"keygen", "--alg", "RSA", "--out", "k"}, `tekenctl keygen: --alg: algorithm "RSA": want ES256 or Ed25519`, hint("keygen")},
		{[]string{"verify"}, "tekenctl verify: want signed PDFs, or RESULT.json and at least one document", hint("verify")},
		{[]string{"verify", "--sig", "a.p7s"}, "tekenctl verify: --sig takes exactly one document", hint("verify")},
		{[]string{"audit"}, "tekenctl audit: want export or verify first", hint("audit")},
		{[]string{"audit", "verfy"}, `tekenctl audit: unknown action "verfy": want export or verify first (did you mean "verify"?)`, hint("audit")},
		{[]string{"audit", "verify"}, "tekenctl audit verify: no --db FILE", hint("audit verify")},
		{[]string{"audit", "verify", "--db", "x", "--timeout", "soon"}, `tekenctl audit verify: invalid value "soon" for flag -timeout: want a number before each unit (e.g. 30s, 90m, 36h, 7d)`, hint("audit verify")},
		{[]string{"token"}, "tekenctl token: want enrol, import-cert, info or sim first", hint("token")},
		{[]string{"token", "simm"}, `tekenctl token: unknown action "simm": want enrol, import-cert, info or sim first (did you mean "sim"?)`, hint("token")},
		{[]string{"token", "sim"}, "tekenctl token sim: no --state DIR", hint("token sim")},
		{[]string{"completion", "zsh"}, "tekenctl completion: only 'bash' is supported", hint("completion")},
		{[]string{"results", "extra"}, `tekenctl results: unexpected argument "extra"`, hint("results")},
		{[]string{"results", "--timeout", "0"}, "tekenctl results: --timeout must be positive", hint("results")},
		{[]string{"fleet", "--watch", "-1"}, `tekenctl fleet: invalid value "-1" for flag -watch: a duration cannot be negative`, hint("fleet")},
		{[]string{"fleet", "--watch", "500ms"}, "tekenctl fleet: --watch 500ms: redraw at most once a second", hint("fleet")},
		{[]string{"fleet", "--quiet", "0"}, "tekenctl fleet: --quiet must be positive", hint("fleet")},
		{[]string{"fleet", "-v", "--terminals", "Not A Slug"}, "", hint("fleet")},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			c := tekenctl(t, context.Background(), nil, tc.args...)
			lines := strings.Split(strings.TrimSuffix(c.stderr, "\n"), "\n")
			if c.code != exitUsage || c.stdout != "" || len(lines) != 2 || !strings.HasSuffix(c.stderr, "\n") {
				t.Fatalf("want exit %d, nothing on stdout and two lines on stderr: %+v", exitUsage, c)
			}
			if tc.line != "" && lines[0] != tc.line {
				t.Errorf("error line\n got %q\nwant %q", lines[0], tc.line)
			}
			if lines[1] != tc.hint {
				t.Errorf("hint\n got %q\nwant %q", lines[1], tc.hint)
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
	var names []string
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
