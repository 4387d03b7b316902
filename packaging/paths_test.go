package packaging_test

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/gateway"
)

// tekenPath is an absolute path of Teken's own on a terminal or a
// gateway: its configuration, state, runtime, shared and documentation
// directories.
var tekenPath = regexp.MustCompile(`/(?:etc|var/lib|run|usr/share|usr/share/doc|usr/lib)/teken(?:-gateway)?(?:/[A-Za-z0-9._/-]*)?`)

// TestPathsInDocsAreReal: every path of Teken's that the docs, the man
// pages, the alert rules and the help texts of the commands name is one the
// code or the package really uses — installed by the package, a constant
// of the code, or a file the shipped configuration names — so that a
// renamed file (the store was once called teken.db in three places) cannot
// survive in the docs.
func TestPathsInDocsAreReal(t *testing.T) {
	known := knownPaths(t)
	var sources []string
	for _, pattern := range []string{"README.md", "docs/*.md", "packaging/man/*.in", "packaging/prometheus/alerts.yml",
		"packaging/debian/postinst", "systemd/*", "cmd/*/*.go", "internal/ctl/*.go", "internal/ctl/tekenctl.bash", "internal/demo/*.go"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, m...)
	}
	checked := 0
	for _, src := range sources {
		if strings.HasSuffix(src, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(raw), "\n") {
			for _, p := range tekenPath.FindAllString(line, -1) {
				p = strings.TrimRight(p, "./-")
				checked++
				if !known.has(p) {
					rel, _ := filepath.Rel(repoRoot, src)
					t.Errorf("%s:%d names %s, which neither the package, the code nor the shipped configuration has", rel, n+1, p)
				}
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d paths found: is the pattern still right?", checked)
	}
}

// pathSet holds files and the directories above them.
type pathSet map[string]bool

func (s pathSet) add(p string) {
	p = filepath.Clean(p)
	for ; p != "/" && p != "."; p = filepath.Dir(p) {
		s[p] = true
	}
}

func (s pathSet) has(p string) bool { return s[filepath.Clean(p)] }

// knownPaths are the paths Teken has: what nfpm.yaml installs and the
// tmpfiles create, the code's own constants, and every path the shipped
// configuration names (its comments included: they are the files an
// operator is told to provide).
func knownPaths(t *testing.T) pathSet {
	t.Helper()
	s := pathSet{}
	anyPath := regexp.MustCompile(`(?m)(?:dst:|^d)\s+(/\S+)`)
	for _, f := range []string{"packaging/nfpm.yaml", "systemd/teken.tmpfiles", "packaging/gateway/nfpm.yaml", "systemd/teken-gateway.tmpfiles"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range anyPath.FindAllStringSubmatch(string(raw), -1) {
			s.add(m[1])
		}
	}
	cfg := daemon.DefaultConfig()
	s.add(daemon.DefaultConfigPath)
	s.add(daemon.StorePath(cfg.DataDir))
	for _, p := range codePaths() {
		s.add(p)
	}
	s.add(gateway.DefaultConfigPath)
	s.add(gateway.DefaultConfig().Store.Path)
	for _, f := range []string{"tekend.toml", "tekengw.toml"} {
		sample, err := os.ReadFile(filepath.Join(repoRoot, "packaging", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tekenPath.FindAllString(string(sample), -1) {
			s.add(p)
		}
	}
	if !s.has("/var/lib/teken/tekend.db") || !s.has("/etc/teken/dispatcher.pub") {
		t.Fatalf("known paths lack the store or the dispatcher key: %v", slices.Sorted(maps.Keys(s)))
	}
	return s
}

// codePaths are the other paths the code fixes.
func codePaths() []string { return []string{admin.DefaultSocket} }
