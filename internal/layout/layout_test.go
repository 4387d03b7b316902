package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tekenid/teken"

const (
	paho  = "github.com/eclipse/paho.mqtt.golang"
	pivgo = "github.com/go-piv/piv-go/v2"
	bbolt = "go.etcd.io/bbolt"
)

// kind says which files of a package an import comes from; the rules treat
// test files differently because they never end up in a binary.
type kind int

const (
	build kind = iota // non-test files
	test              // _test.go files of the package itself
	xtest             // _test.go files of package <name>_test
)

func (k kind) String() string {
	switch k {
	case build:
		return "non-test files"
	case test:
		return "test files"
	default:
		return "external test files"
	}
}

// pkg is one package of the module as go list reports it, with its path
// relative to the module ("transport", "device/pivsim") so that the rules
// read like the README.
type pkg struct {
	Path                               string
	Imports, TestImports, XTestImports []string
}

// edge is one import: from is module-relative, to is the full import path,
// and rel is to relative to the module, or "" when to is outside it.
type edge struct {
	from, to, rel string
	kind          kind
}

type rule struct {
	id   string
	text string
	bad  func(e edge) bool
}

// exception lets one package's files of one kind break one rule. Each is a
// debt or a deliberate hole with its reason; an exception that no longer
// matches an import is reported, so that the holes close when the code does.
type exception struct {
	rule string
	from string // module-relative importer
	to   string // import path, sub-packages included
	kind kind
	why  string
}

// exceptions are the ones the tree needs today.
var exceptions = []exception{
	{
		rule: "2", from: "internal/testenv", to: pivgo, kind: xtest,
		why: "its tests prove that the private pcscd it starts works by listing the " +
			"virtual readers through piv-go, the same path device takes",
	},
	{
		rule: "3", from: "cmd/tekenctl", to: bbolt, kind: test,
		why: "e2e_test flips a byte in the audit bucket of a copied store to " +
			"prove that `tekenctl audit verify` reports a broken chain; queue " +
			"offers no way to damage its own log (a debt: a queue test helper " +
			"would keep bbolt's layout inside queue)",
	},
}

// within reports whether p is prefix or one of its sub-packages; a plain
// prefix test would let "transport" match "transportx".
func within(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

func withinAny(p string, prefixes ...string) bool {
	for _, prefix := range prefixes {
		if within(p, prefix) {
			return true
		}
	}
	return false
}

func isLeaf(p string) bool {
	return p == "api" || p == "queue" || p == "transport" ||
		within(p, "device") || within(p, "signature")
}

// isStd tells standard-library paths by their first element, which has no
// dot; every other module's path starts with a domain.
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// leafImports are the only imports between leaves, all by design: the
// transport speaks the contract, a signed PDF carries a CMS signature, a
// timestamp token is a CMS signature, and a PDF is stamped and given its
// validation data through the timestamp client and the revocation checker.
var leafImports = map[[2]string]bool{
	{"transport", "api"}:                        true,
	{"signature/pades", "signature/cms"}:        true,
	{"signature/pades", "signature/tsa"}:        true,
	{"signature/pades", "signature/revocation"}: true,
	{"signature/tsa", "signature/cms"}:          true,
}

var rules = []rule{
	{
		id:   "1",
		text: "only transport imports paho, in test files too",
		bad: func(e edge) bool {
			return within(e.to, paho) && e.from != "transport"
		},
	},
	{
		id:   "2",
		text: "only device and device/... import piv-go",
		bad: func(e edge) bool {
			return within(e.to, pivgo) && !within(e.from, "device")
		},
	},
	{
		id:   "3",
		text: "only queue and gateway/store/boltstore import bbolt, in test files too",
		bad: func(e edge) bool {
			return within(e.to, bbolt) && e.from != "queue" && e.from != "gateway/store/boltstore"
		},
	},
	{
		id: "4",
		text: "a leaf (api, queue, device/..., transport, signature/...) imports " +
			"no other package of the module, except transport → api, " +
			"signature/pades → signature/{cms,tsa,revocation} and signature/tsa → signature/cms",
		bad: func(e edge) bool {
			return e.kind == build && isLeaf(e.from) && e.rel != "" &&
				!leafImports[[2]string{e.from, e.rel}]
		},
	},
	{
		id:   "5a",
		text: "daemon/... never imports cmd/...",
		bad: func(e edge) bool {
			return e.kind == build && within(e.from, "daemon") && within(e.rel, "cmd")
		},
	},
	{
		id:   "5c",
		text: "daemon/... and gateway/... never import each other, nor cmd/...",
		bad: func(e edge) bool {
			return e.kind == build && ((within(e.from, "daemon") && within(e.rel, "gateway")) ||
				(within(e.from, "gateway") && withinAny(e.rel, "daemon", "cmd")))
		},
	},
	{
		id:   "5b",
		text: "daemon/kiosk imports the standard library only",
		bad: func(e edge) bool {
			return e.kind == build && e.from == "daemon/kiosk" && !isStd(e.to)
		},
	},
	{
		id:   "6a",
		text: "only internal/... and cmd/... import internal/ctl and internal/demo",
		bad: func(e edge) bool {
			return e.kind == build && withinAny(e.rel, "internal/ctl", "internal/demo") &&
				!withinAny(e.from, "internal", "cmd")
		},
	},
	{
		id: "6b",
		text: "only test files and internal/tekentest import internal/testenv " +
			"and internal/tekentest",
		bad: func(e edge) bool {
			return e.kind == build && withinAny(e.rel, "internal/testenv", "internal/tekentest") &&
				e.from != "internal/tekentest"
		},
	},
	{
		id:   "8",
		text: "nothing imports examples/...: examples are what an integrator reads, tested by their own test files",
		bad: func(e edge) bool {
			return within(e.rel, "examples") && !within(e.from, "examples")
		},
	},
	{
		id:   "7",
		text: "cmd/... imports only daemon/..., gateway/..., internal/..., validation, route and the leaves",
		bad: func(e edge) bool {
			return e.kind == build && within(e.from, "cmd") && e.rel != "" &&
				!withinAny(e.rel, "daemon", "gateway", "internal", "validation", "route") && !isLeaf(e.rel)
		},
	},
	{
		id:   "10",
		text: "route, the central side's library for letters through several hands, imports only api and transport",
		bad: func(e edge) bool {
			return e.kind == build && within(e.from, "route") && e.rel != "" &&
				e.rel != "api" && e.rel != "transport"
		},
	},
	{
		id:   "9",
		text: "validation, which central systems import, imports only api and signature/...",
		bad: func(e edge) bool {
			return e.kind == build && within(e.from, "validation") && e.rel != "" &&
				e.rel != "api" && !within(e.rel, "signature")
		},
	},
}

func ruleText(id string) string {
	for _, r := range rules {
		if r.id == id {
			return r.text
		}
	}
	return roomsText
}

// violation is a broken rule: an import (to set), or for rule 0 a package.
type violation struct {
	rule     string
	from, to string
	kind     kind
	detail   string
}

func (v violation) String() string {
	if v.to == "" {
		return fmt.Sprintf("%s: breaks rule %s (%s): %s", fullPath(v.from), v.rule, ruleText(v.rule), v.detail)
	}
	s := fmt.Sprintf("%s (%s) imports %s: breaks rule %s: %s",
		fullPath(v.from), v.kind, v.to, v.rule, ruleText(v.rule))
	if v.detail != "" {
		s += " (" + v.detail + ")"
	}
	return s
}

// checkImports applies every rule to every import and returns what breaks
// them, the unused exceptions included.
func checkImports(pkgs []pkg, excs []exception) []violation {
	used := make([]bool, len(excs))
	var out []violation
	for _, p := range pkgs {
		for k, imports := range [][]string{build: p.Imports, test: p.TestImports, xtest: p.XTestImports} {
			for _, to := range imports {
				e := edge{from: p.Path, to: to, rel: relative(to), kind: kind(k)}
				if e.rel == p.Path {
					continue // an external test importing its own package
				}
				for _, r := range rules {
					if !r.bad(e) {
						continue
					}
					i := slices.IndexFunc(excs, func(x exception) bool {
						return x.rule == r.id && x.from == e.from && within(e.to, x.to) && x.kind == e.kind
					})
					if i >= 0 {
						used[i] = true
						continue
					}
					out = append(out, violation{rule: r.id, from: e.from, to: e.to, kind: e.kind})
				}
			}
		}
	}
	for i, x := range excs {
		if !used[i] {
			out = append(out, violation{rule: x.rule, from: x.from, to: x.to, kind: x.kind,
				detail: "no import needs its exception any more, remove it: " + x.why})
		}
	}
	return out
}

func fullPath(rel string) string {
	if rel == "." {
		return module
	}
	return module + "/" + rel
}

// relative returns p relative to the module, "." for the module's root
// package, or "" when p is outside the module.
func relative(p string) string {
	if p == module {
		return "."
	}
	if rest, ok := strings.CutPrefix(p, module+"/"); ok {
		return rest
	}
	return ""
}

const roomsText = "every package lives in a known room and every package a rule names exists"

// named are the packages the rules and exceptions name; if one is renamed
// or removed, the rules about it would pass without checking anything.
var named = []string{
	"api", "queue", "device", "transport", "signature", "signature/cms",
	"signature/pades", "signature/tsa", "signature/revocation", "validation",
	"daemon", "daemon/kiosk", "cmd/tekend", "cmd/tekenctl", "cmd/tekengw", "gateway", "gateway/store/boltstore", "route",
	"internal/ctl", "internal/demo", "internal/testenv", "internal/tekentest",
}

// checkRooms reports packages outside every room, which no rule would
// constrain, and named packages that no longer exist.
func checkRooms(pkgs []pkg) []violation {
	var out []violation
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p.Path] = true
		if !isLeaf(p.Path) && !withinAny(p.Path, "daemon", "gateway", "cmd", "internal", "packaging", "examples", "validation", "route") {
			out = append(out, violation{rule: "0", from: p.Path,
				detail: "the package is in no room: place it, and teach the rules about it"})
		}
	}
	for _, n := range named {
		if !have[n] {
			out = append(out, violation{rule: "0", from: n,
				detail: "a rule names this package but it does not exist: update the rules"})
		}
	}
	return out
}

// listPackage holds the fields of `go list -json` the test reads.
type listPackage struct {
	ImportPath                         string
	Dir                                string
	Imports, TestImports, XTestImports []string
	IgnoredGoFiles                     []string
	Error                              *struct{ Err string }
}

// moduleRoot walks up from the test's directory to go.mod, so that go list
// sees the whole module wherever the test binary runs.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// loadPackages lists the module's packages. go list drops the files the
// build context excludes (build tags, another GOOS, cgo off), and their
// imports count as much as the others, so those files are parsed here.
func loadPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command(goCommand(), "list", "-e", "-deps=false",
		"-json=ImportPath,Dir,Imports,TestImports,XTestImports,IgnoredGoFiles,Error", "./...")
	cmd.Dir = moduleRoot(t)
	// The imports are all in the source; GOPROXY=off makes sure that a
	// missing module fails here rather than reaching for the network.
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var lp listPackage
		if err := dec.Decode(&lp); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		rel := relative(lp.ImportPath)
		if rel == "" {
			t.Fatalf("go list returned %s, outside module %s: update the module constant", lp.ImportPath, module)
		}
		if lp.Error != nil {
			// A package go list cannot read may have imports it did not
			// report; passing on it would hide them.
			t.Errorf("%s: cannot read its imports: %s", lp.ImportPath, lp.Error.Err)
		}
		p := pkg{Path: rel, Imports: lp.Imports, TestImports: lp.TestImports, XTestImports: lp.XTestImports}
		for _, name := range lp.IgnoredGoFiles {
			addIgnored(t, &p, filepath.Join(lp.Dir, name))
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// addIgnored adds the imports of a file go list excluded to p, under the
// kind of file the go tool would make of it: by its name and package clause.
func addIgnored(t *testing.T, p *pkg, path string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	dst := &p.Imports
	if strings.HasSuffix(path, "_test.go") {
		dst = &p.TestImports
		if strings.HasSuffix(f.Name.Name, "_test") {
			dst = &p.XTestImports
		}
	}
	for _, s := range f.Imports {
		ip, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			t.Errorf("%s: import %s: %v", path, s.Path.Value, err)
			continue
		}
		*dst = append(*dst, ip)
	}
}

func TestLayout(t *testing.T) {
	pkgs := loadPackages(t)
	for _, v := range checkRooms(pkgs) {
		t.Errorf("%s", v)
	}
	for _, v := range checkImports(pkgs, exceptions) {
		t.Errorf("%s", v)
	}
}

// The cases below feed synthetic packages to the checks, so that each rule
// is proven to fire, and to stay quiet, without touching the tree.

func m(rel string) string { return fullPath(rel) }

func TestCheckImports(t *testing.T) {
	// clean is the shape of the tree: every case adds one import to it.
	clean := []pkg{
		{Path: "api", Imports: []string{"github.com/go-jose/go-jose/v4"}, TestImports: []string{m("internal/testenv")}},
		{Path: "transport", Imports: []string{paho, m("api")}, TestImports: []string{paho + "/packets"}},
		{Path: "queue", Imports: []string{bbolt, bbolt + "/errors"}, TestImports: []string{bbolt}},
		{Path: "device", Imports: []string{pivgo + "/piv"}, TestImports: []string{pivgo + "/piv", m("device/pivsim")}},
		{Path: "device/pivsim", TestImports: []string{pivgo + "/piv", m("internal/testenv")}},
		{Path: "signature/cms", Imports: []string{"golang.org/x/crypto/cryptobyte"}},
		{Path: "signature/pades", Imports: []string{m("signature/cms")}},
		{Path: "daemon", Imports: []string{m("api"), m("device"), m("queue"), m("transport"), m("daemon/kiosk"), m("internal/version")},
			XTestImports: []string{m("daemon"), m("internal/demo"), m("internal/tekentest"), m("internal/testenv")}},
		{Path: "daemon/kiosk", Imports: []string{"embed", "net/http"}},
		{Path: "cmd/tekend", Imports: []string{m("daemon"), m("internal/version")}},
		{Path: "cmd/tekenctl", Imports: []string{m("api"), m("queue"), m("internal/ctl"), m("internal/demo")},
			TestImports: []string{m("daemon"), m("internal/tekentest")}},
		{Path: "internal/ctl", Imports: []string{m("internal/demo"), m("transport")}},
		{Path: "internal/demo", Imports: []string{m("transport")}},
		{Path: "internal/tekentest", Imports: []string{m("daemon"), m("internal/testenv")}},
		{Path: "internal/testenv", XTestImports: []string{pivgo + "/piv"}},
		{Path: "packaging", XTestImports: []string{m("internal/testenv")}},
	}
	type want struct {
		rule, from, to string
		kind           kind
	}
	// testenvPiv is the exception clean needs; a case with excs nil gets it.
	testenvPiv := exception{rule: "2", from: "internal/testenv", to: pivgo, kind: xtest}
	tests := []struct {
		name string
		add  pkg // one more entry for a package of clean, or a new one
		excs []exception
		want []want
	}{
		{name: "clean tree"},
		{name: "daemon imports paho", add: pkg{Path: "daemon", Imports: []string{paho}},
			want: []want{{"1", "daemon", paho, build}}},
		{name: "api test imports a paho sub-package", add: pkg{Path: "api", TestImports: []string{paho + "/packets"}},
			want: []want{{"1", "api", paho + "/packets", test}}},
		{name: "a look-alike of paho is not paho", add: pkg{Path: "daemon", Imports: []string{paho + "x"}}},
		{name: "daemon imports piv-go", add: pkg{Path: "daemon", Imports: []string{pivgo + "/piv"}},
			want: []want{{"2", "daemon", pivgo + "/piv", build}}},
		{name: "piv-go in internal/testenv tests without the exception",
			excs: []exception{},
			want: []want{{"2", "internal/testenv", pivgo + "/piv", xtest}}},
		{name: "the exception covers no other kind of file",
			add:  pkg{Path: "internal/testenv", Imports: []string{pivgo + "/piv"}},
			want: []want{{"2", "internal/testenv", pivgo + "/piv", build}}},
		{name: "an unused exception is reported",
			excs: []exception{testenvPiv, {rule: "3", from: "cmd/tekenctl", to: bbolt, kind: test}},
			want: []want{{"3", "cmd/tekenctl", bbolt, test}}},
		{name: "cmd/tekenctl test imports bbolt", add: pkg{Path: "cmd/tekenctl", TestImports: []string{bbolt}},
			want: []want{{"3", "cmd/tekenctl", bbolt, test}}},
		{name: "a leaf imports another leaf", add: pkg{Path: "queue", Imports: []string{m("api")}},
			want: []want{{"4", "queue", m("api"), build}}},
		{name: "api imports transport: the exception is one way", add: pkg{Path: "api", Imports: []string{m("transport")}},
			want: []want{{"4", "api", m("transport"), build}}},
		{name: "device imports its simulator", add: pkg{Path: "device", Imports: []string{m("device/pivsim")}},
			want: []want{{"4", "device", m("device/pivsim"), build}}},
		{name: "signature/cms imports signature/pades", add: pkg{Path: "signature/cms", Imports: []string{m("signature/pades")}},
			want: []want{{"4", "signature/cms", m("signature/pades"), build}}},
		{name: "a leaf imports internal/version", add: pkg{Path: "transport", Imports: []string{m("internal/version")}},
			want: []want{{"4", "transport", m("internal/version"), build}}},
		{name: "a leaf imports daemon", add: pkg{Path: "device/pivsim", Imports: []string{m("daemon")}},
			want: []want{{"4", "device/pivsim", m("daemon"), build}}},
		{name: "a leaf's test imports another leaf", add: pkg{Path: "queue", TestImports: []string{m("api")}}},
		{name: "daemon imports cmd", add: pkg{Path: "daemon", Imports: []string{m("cmd/tekenctl")}},
			want: []want{{"5a", "daemon", m("cmd/tekenctl"), build}}},
		{name: "the gateway imports daemon", add: pkg{Path: "gateway", Imports: []string{m("daemon")}},
			want: []want{{"5c", "gateway", m("daemon"), build}}},
		{name: "daemon imports the gateway's store", add: pkg{Path: "daemon", Imports: []string{m("gateway/store")}},
			want: []want{{"5c", "daemon", m("gateway/store"), build}}},
		{name: "the gateway imports bbolt", add: pkg{Path: "gateway", Imports: []string{bbolt}},
			want: []want{{"3", "gateway", bbolt, build}}},
		{name: "kiosk imports the module", add: pkg{Path: "daemon/kiosk", Imports: []string{m("api")}},
			want: []want{{"5b", "daemon/kiosk", m("api"), build}}},
		{name: "kiosk imports another module", add: pkg{Path: "daemon/kiosk", Imports: []string{"golang.org/x/net/html"}},
			want: []want{{"5b", "daemon/kiosk", "golang.org/x/net/html", build}}},
		{name: "daemon imports internal/ctl", add: pkg{Path: "daemon", Imports: []string{m("internal/ctl")}},
			want: []want{{"6a", "daemon", m("internal/ctl"), build}}},
		{name: "packaging imports internal/demo", add: pkg{Path: "packaging", Imports: []string{m("internal/demo")}},
			want: []want{{"6a", "packaging", m("internal/demo"), build}}},
		{name: "daemon imports internal/testenv", add: pkg{Path: "daemon", Imports: []string{m("internal/testenv")}},
			want: []want{{"6b", "daemon", m("internal/testenv"), build}}},
		{name: "internal/ctl imports internal/tekentest", add: pkg{Path: "internal/ctl", Imports: []string{m("internal/tekentest")}},
			want: []want{{"6b", "internal/ctl", m("internal/tekentest"), build}}},
		{name: "cmd imports cmd", add: pkg{Path: "cmd/tekend", Imports: []string{m("cmd/tekenctl")}},
			want: []want{{"7", "cmd/tekend", m("cmd/tekenctl"), build}}},
		{name: "cmd imports packaging", add: pkg{Path: "cmd/tekenctl", Imports: []string{m("packaging")}},
			want: []want{{"7", "cmd/tekenctl", m("packaging"), build}}},
		{name: "cmd test imports cmd", add: pkg{Path: "cmd/tekenctl", XTestImports: []string{m("cmd/tekend")}}},
		{name: "one import breaks two rules", add: pkg{Path: "daemon/kiosk", Imports: []string{paho}},
			want: []want{{"1", "daemon/kiosk", paho, build}, {"5b", "daemon/kiosk", paho, build}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := slices.Clone(clean)
			if tc.add.Path != "" {
				pkgs = append(pkgs, tc.add)
			}
			excs := tc.excs
			if excs == nil {
				excs = []exception{testenvPiv}
			}
			var got []want
			for _, v := range checkImports(pkgs, excs) {
				got = append(got, want{v.rule, v.from, v.to, v.kind})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestCheckRooms(t *testing.T) {
	all := func(extra ...string) []pkg {
		var pkgs []pkg
		for _, n := range append(slices.Clone(named), extra...) {
			pkgs = append(pkgs, pkg{Path: n})
		}
		return pkgs
	}
	tests := []struct {
		name string
		pkgs []pkg
		want []string // the packages reported
	}{
		{name: "the tree", pkgs: all("device/pivsim", "internal/version", "packaging/prometheus", "internal/layout")},
		{name: "a package outside every room", pkgs: all("util"), want: []string{"util"}},
		{name: "the module's root package", pkgs: all("."), want: []string{"."}},
		{name: "a look-alike of a room", pkgs: all("daemonx"), want: []string{"daemonx"}},
		{name: "a named package is gone", pkgs: all()[1:], want: []string{named[0]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range checkRooms(tc.pkgs) {
				got = append(got, v.from)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestViolationNamesBothEnds keeps the message useful: importer, imported
// package and rule must all be in it.
func TestViolationNamesBothEnds(t *testing.T) {
	s := violation{rule: "1", from: "daemon", to: paho, kind: build}.String()
	for _, want := range []string{"daemon", paho, "rule 1", ruleText("1"), "non-test files"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}
