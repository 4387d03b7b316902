package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestRouteUsage(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "none.ledger")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"route", "--help"}, 0, "Examples:"},
		{[]string{"route"}, 2, "no --ledger FILE"},
		{[]string{"route", "--ledger", missing, "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"route", "--ledger", missing, "--pdf", "x.pdf"}, 2, "--pdf needs a ROUTE"},
		{[]string{"route", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"route", "--ledger", missing}, 1, "no such file"},
	} {
		c := tekenctl(t, ctx, nil, tc.args...)
		if c.code != tc.code || !strings.Contains(c.stdout+c.stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d; output lacks %q", tc.args, c.code, tc.code, tc.want)
		}
	}
}
