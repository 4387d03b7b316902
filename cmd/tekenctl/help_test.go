package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: the full help goes to stdout with exit 0, whichever way it is
// asked for, and 'help COMMAND' is the same as 'COMMAND --help'.
func TestHelp(t *testing.T) {
	list := tekenctl(t, context.Background(), nil, "help")
	if list.code != exitOK || list.stderr != "" {
		t.Fatalf("help: %+v", list)
	}
	for name, cmd := range commands {
		if !strings.Contains(list.stdout, "  "+name+" ") || !strings.Contains(list.stdout, cmd.summary) {
			t.Errorf("help does not list %s", name)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-v", "help"}, {"help", "--verbose"}} {
		if c := tekenctl(t, context.Background(), nil, args...); c.code != exitOK || c.stdout != list.stdout || c.stderr != "" {
			t.Errorf("%v: not the same as help: %+v", args, c)
		}
	}
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			want := tekenctl(t, context.Background(), nil, name, "--help")
			if want.code != exitOK || want.stderr != "" || !strings.Contains(want.stdout, "\nFlags:\n") || !strings.Contains(want.stdout, "-verbose") {
				t.Fatalf("%s --help: %+v", name, want)
			}
			for _, args := range [][]string{{"help", name}, {name, "-h"}, {"--verbose", name, "--help"}, {"help", "-v", name}} {
				if c := tekenctl(t, context.Background(), nil, args...); c.code != exitOK || c.stdout != want.stdout || c.stderr != "" {
					t.Errorf("%v: not the same as %s --help: %+v", args, name, c)
				}
			}
		})
	}
}

// TestVersion: both spellings print the same one line.
func TestVersion(t *testing.T) {
	a := tekenctl(t, context.Background(), nil, "version")
	b := tekenctl(t, context.Background(), nil, "--version")
	if a.code != exitOK || a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "tekenctl ") || strings.Count(a.stdout, "\n") != 1 {
		t.Errorf("version %+v, --version %+v", a, b)
	}
}

// TestNoHelpPutsPrivateKeyOnTerminal: /etc/teken is a terminal's
// configuration; a dispatcher's private key must never be put there, and
// no help may show it.
func TestNoHelpPutsPrivateKeyOnTerminal(t *testing.T) {
	onTerminal := regexp.MustCompile(`/etc/teken/\S*\.key|--dispatcher-key[ =]/etc/teken/`)
	for name := range commands {
		c := tekenctl(t, context.Background(), nil, name, "--help")
		if m := onTerminal.FindString(c.stdout); m != "" {
			t.Errorf("%s --help puts a private key on a terminal: %q", name, m)
		}
	}
	c := tekenctl(t, context.Background(), nil, "keygen", "--help")
	if !strings.Contains(c.stdout, "/etc/teken/dispatcher.pub") {
		t.Errorf("keygen --help does not say where the terminals' public key goes:\n%s", c.stdout)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"terminal", "timeout", "title", "signer", "format", "from", "v", "verbose", "wait"}
	for _, tc := range []struct{ typed, want string }{
		{"terminl", "terminal"},
		{"termnial", "terminal"},
		{"signr", "signer"},
		{"verbos", "verbose"},
		{"term", "terminal"}, // a unique prefix
		{"t", ""},            // too short to guess
		{"x", ""},
		{"form", "format"}, // two edits from both: the prefix decides
		{"zzzzzz", ""},
		{"timeout", ""}, // no typo
		{strings.Repeat("a", 1000), ""},
	} {
		if got := suggest(tc.typed, names); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}
