package kiosk

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Both catalogues must hold the same ids with the same placeholders, so no
// screen falls back to a bare id in one language.
func TestCataloguesAgree(t *testing.T) {
	id, err := Catalog("id")
	if err != nil {
		t.Fatal(err)
	}
	en, err := Catalog("en")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range id {
		w, ok := en[k]
		if !ok {
			t.Errorf("%s: missing in en", k)
			continue
		}
		a, b := placeholders(v), placeholders(w)
		if !slices.Equal(a, b) {
			t.Errorf("%s: placeholders differ: id %v, en %v", k, a, b)
		}
	}
	for k := range en {
		if _, ok := id[k]; !ok {
			t.Errorf("%s: missing in id", k)
		}
	}
	// A counted text has the forms of both languages' plural rules: the
	// page picks one with Intl.PluralRules and falls back to .other.
	for _, cat := range []map[string]string{id, en} {
		for k := range cat {
			base, form, ok := strings.Cut(k, ".")
			if !ok {
				continue
			}
			if form != "one" && form != "other" {
				t.Errorf("%s: plural form %q, want one or other", k, form)
			}
			for _, f := range []string{"one", "other"} {
				if _, ok := cat[base+"."+f]; !ok {
					t.Errorf("%s: no %s.%s beside it", k, base, f)
				}
			}
			if _, ok := cat[base]; ok {
				t.Errorf("%s: both a counted text and a plain one", base)
			}
		}
	}
}

func placeholders(s string) []string {
	p := placeholder.FindAllString(s, -1)
	slices.Sort(p)
	return slices.Compact(p)
}

// pageScripts reads every script of the page.
func pageScripts(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("web/*.js")
	if err != nil || len(files) < 2 {
		t.Fatalf("page scripts: %v %v", files, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

// textCall is one t("id", …) or tn("id", n, …) in a page script, with the
// names of its parameters when they are an object literal.
type textCall struct {
	file, id string
	counted  bool
	params   []string // nil: no literal (none given, or a variable)
	literal  bool
}

var callRE = regexp.MustCompile(`\b(tn?)\(\s*"([a-z_]+)"`)

func textCalls(js map[string]string) []textCall {
	var calls []textCall
	for file, src := range js {
		for _, m := range callRE.FindAllStringSubmatchIndex(src, -1) {
			c := textCall{file: file, id: src[m[4]:m[5]], counted: src[m[2]:m[3]] == "tn"}
			args := splitArgs(src[m[1]:])
			if c.counted && len(args) > 0 {
				args = args[1:] // the count
			}
			if len(args) == 0 {
				c.literal = true
			} else if obj := strings.TrimSpace(args[0]); strings.HasPrefix(obj, "{") && strings.HasSuffix(obj, "}") {
				c.literal = true
				for _, p := range splitTop(obj[1:len(obj)-1], ',') {
					name, _, _ := strings.Cut(strings.TrimSpace(p), ":")
					if name = strings.TrimSpace(name); name != "" {
						c.params = append(c.params, name)
					}
				}
			}
			calls = append(calls, c)
		}
	}
	return calls
}

// splitArgs returns the further arguments of a call whose first argument
// ends at the start of s, up to its closing parenthesis.
func splitArgs(s string) []string {
	depth, end := 0, -1
	for i, r := range s {
		switch r {
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			if depth == 0 {
				end = i
			}
			depth--
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return nil
	}
	rest := strings.TrimSpace(s[:end])
	if !strings.HasPrefix(rest, ",") {
		return nil
	}
	return splitTop(rest[1:], ',')
}

// splitTop splits s at sep outside brackets and string literals.
func splitTop(s string, sep rune) []string {
	var parts []string
	depth, start := 0, 0
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'' || r == '`':
			quote = r
		case r == '(' || r == '{' || r == '[':
			depth++
		case r == ')' || r == '}' || r == ']':
			depth--
		case r == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		parts = append(parts, s[start:])
	}
	return parts
}

// Every message id the page or the Go code uses must be in both catalogues:
// a plain id as itself, a counted one (tn) in each plural form, each with
// exactly the parameters the call passes.
func TestEveryUsedIDIsCatalogued(t *testing.T) {
	cats := map[string]map[string]string{}
	for _, l := range Languages {
		c, err := Catalog(l)
		if err != nil {
			t.Fatal(err)
		}
		cats[l] = c
	}
	js := pageScripts(t)
	calls := textCalls(js)
	if len(calls) < 60 {
		t.Fatalf("found only %d t(...) and tn(...) calls in the page", len(calls))
	}
	counted := 0
	for _, c := range calls {
		keys := []string{c.id}
		want := slices.Clone(c.params)
		if c.counted {
			keys = []string{c.id + ".one", c.id + ".other"}
			want = append(want, "n")
			counted++
		}
		slices.Sort(want)
		for l, cat := range cats {
			for _, k := range keys {
				s, ok := cat[k]
				if !ok {
					t.Errorf("%s uses %q, not in the %s catalogue", c.file, k, l)
					continue
				}
				if !c.literal {
					continue
				}
				var got []string
				for _, p := range placeholders(s) {
					got = append(got, p[1:len(p)-1])
				}
				slices.Sort(got)
				if !slices.Equal(got, slices.Compact(want)) {
					t.Errorf("%s: %s %q has parameters %v, the call passes %v", c.file, l, k, got, want)
				}
			}
		}
	}
	if counted < 5 {
		t.Errorf("found only %d counted texts (tn)", counted)
	}
	// Codes the page sets itself or compares with, as string literals.
	codeRE := regexp.MustCompile(`"((?:err|info|doc_reason)_[a-z_]+)"`)
	for file, src := range js {
		for _, m := range codeRE.FindAllStringSubmatch(src, -1) {
			for l, cat := range cats {
				if _, ok := cat[m[1]]; !ok {
					t.Errorf("%s names code %q, not in the %s catalogue", file, m[1], l)
				}
			}
		}
	}
	cat := cats["id"]
	for _, code := range ErrorCodes {
		if _, ok := cat[code]; !ok {
			t.Errorf("error code %q not in the catalogue", code)
		}
	}
	for _, code := range TerminalCodes {
		if _, ok := cat[code]; !ok {
			t.Errorf("terminal code %q not in the catalogue", code)
		}
	}
	for _, code := range []string{"err_not_viewed", "err_unrenderable"} {
		if _, ok := cat[code]; !ok {
			t.Errorf("code %q not in the catalogue", code)
		}
	}
}

// The parameter scanner itself, on the shapes the page writes.
func TestTextCalls(t *testing.T) {
	calls := textCalls(map[string]string{"x.js": `a(t("one")); t("two", { n: tries, title }); tn("three", jobs.length, { x: f(1, 2) }); t(err.code, err.params); t("four", err.params)`})
	slices.SortFunc(calls, func(a, b textCall) int { return strings.Compare(a.id, b.id) })
	want := []textCall{
		{file: "x.js", id: "four"},
		{file: "x.js", id: "one", literal: true},
		{file: "x.js", id: "three", counted: true, literal: true, params: []string{"x"}},
		{file: "x.js", id: "two", literal: true, params: []string{"n", "title"}},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v", calls)
	}
	for i := range want {
		if calls[i].id != want[i].id || calls[i].counted != want[i].counted || calls[i].literal != want[i].literal || !slices.Equal(calls[i].params, want[i].params) {
			t.Errorf("call %d: %+v, want %+v", i, calls[i], want[i])
		}
	}
}

func TestText(t *testing.T) {
	got := Text("id", Message{Code: "err_wrong_pin", Params: map[string]string{"n": "2"}})
	if got != "PIN salah. Sisa percobaan: 2." {
		t.Errorf("Text = %q", got)
	}
	if got := Text("en", Message{Code: "idle_title"}); got != "Tap your token" {
		t.Errorf("Text = %q", got)
	}
}
