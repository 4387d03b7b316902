package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/internal/testenv"
)

// complete runs the completion script in bash for the words typed so far
// (the last one is being completed) and returns what it offers.
func complete(t *testing.T, words ...string) []string {
	t.Helper()
	bash := testenv.LookPath(t, "bash")
	script := filepath.Join(t.TempDir(), "tekenctl.bash")
	if err := os.WriteFile(script, []byte(ctl.BashCompletion), 0o644); err != nil {
		t.Fatal(err)
	}
	line := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tekenctl; printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.CommandContext(t.Context(), bash, append([]string{"--norc", "--noprofile", "-c", line, "bash", script, "tekenctl"}, words...)...)
	cmd.Dir = t.TempDir() // file names offered come from an empty directory
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("complete %q: %v", words, err)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	return got
}

// helpFlags lists the flags a command's --help shows, as typed.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	c := tekenctl(t, context.Background(), nil, append(args, "--help")...)
	flags := []string{"--help"}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(c.stdout, -1) {
		flags = append(flags, dashed(m[1]))
	}
	slices.Sort(flags)
	return flags
}

// TestCompletionOffersEveryFlag: for each command the script offers exactly
// the flags its help lists, so the two cannot drift apart.
func TestCompletionOffersEveryFlag(t *testing.T) {
	var cases [][]string
	for _, name := range commandNames() {
		switch name {
		case "audit":
			cases = append(cases, []string{name, "verify"})
		case "token":
			for _, a := range tokenActions {
				cases = append(cases, []string{name, a})
			}
		default:
			cases = append(cases, []string{name})
		}
	}
	for _, args := range cases {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			want := helpFlags(t, args...)
			if got := complete(t, append(args, "-")...); !slices.Equal(got, want) {
				t.Errorf("completion offers %q,\nhelp lists %q", got, want)
			}
		})
	}
}

func TestCompletionWords(t *testing.T) {
	all := commandNames()
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{""}, append([]string{"--help", "--verbose", "--version", "-v"}, all...)},
		{[]string{"--ver"}, []string{"--verbose", "--version"}},
		{[]string{"he"}, []string{"help"}},
		{[]string{"-v", "disp"}, []string{"dispatch"}},
		{[]string{"--verbose", "dispatch", "--exp"}, []string{"--expires"}},
		{[]string{"help", "ve"}, []string{"verify", "version"}},
		{[]string{"audit", ""}, []string{"export", "verify"}},
		{[]string{"token", ""}, []string{"enrol", "import-cert", "info", "sim"}},
		{[]string{"token", "enrol", "--key-type", ""}, []string{"p256", "p384", "rsa2048", "ed25519"}},
		{[]string{"token", "enrol", "--touch", ""}, []string{"always", "cached", "never"}},
		{[]string{"completion", ""}, []string{"bash"}},
		{[]string{"keygen", "--alg", ""}, []string{"ES256", "Ed25519"}},
		{[]string{"dispatch", "--format", ""}, []string{"cms", "pades", "raw"}},
	} {
		t.Run(strings.Join(tc.words, "_"), func(t *testing.T) {
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := complete(t, tc.words...); !slices.Equal(got, want) {
				t.Errorf("offers %q, want %q", got, want)
			}
		})
	}
}
