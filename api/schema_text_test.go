package api

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf16"

	"github.com/tekenid/teken/internal/testenv"
)

// The text rules in the JSON Schemas.
//
// Each schema with free text has $defs "text" (one line) and/or "detail"
// (line feeds allowed), and every free-text property is a $ref to one of them
// plus its maxLength (and minLength 1 when required). The pattern is
//
//	^(?:(?!REFUSED)(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff]))*(?![\s\S])
//
// where REFUSED is a class of the refused characters of the BMP, written as
// \uXXXX escapes, followed by each refused astral character as a literal,
// "|"-separated (the schema files spell them as JSON surrogate-pair escapes,
// "\udb40\udc01", which every JSON parser turns into the one character). It
// means the same wherever it runs:
//
//   - Python's re (python3-jsonschema) and ECMA-262 with the u or v flag
//     match code points. [^\ud800-\udfff] is any character but a lone
//     surrogate, the pair alternative never matches, and an astral literal
//     is one code point.
//   - ECMA-262 without flags matches UTF-16 code units. [^\ud800-\udfff] is
//     any BMP character, the pair alternative consumes an astral character's
//     two units, and an astral literal is the same two units in a row, which
//     the lookahead sees from the first. A lone surrogate matches neither.
//
// Ranges of astral characters would need a class like [\u{e0000}-\u{e007f}]
// (u flag only), [\U000e0000-\U000e007f] (Python only) or literal astral
// bounds (a syntax error without the u flag), hence the literals. The end is
// (?![\s\S]), not $: Python's $ also matches before a final line feed, so
// "title\n" would pass. No \p{…} either: Python's re has none. Every
// validator with ECMA-262 lookahead reads the pattern; RE2-based ones (Go's
// regexp) cannot read any pattern with \u escapes anyway.
//
// TestSchemaTextPatterns checks the patterns against textProblem,
// TestSchemaTextCharacters runs the table of textChars through
// python3-jsonschema, TestSchemaTextAllCodePoints every code point through
// Python's re, and TestSchemaTextECMA both through node's RegExp with and
// without the u and v flags.

// refusedRanges are the code points textProblem refuses, as closed ranges,
// surrogates left out (Go strings cannot hold them).
func refusedRanges(detail bool) [][2]rune {
	if detail {
		return slices.Clone(refusedDetail())
	}
	return slices.Clone(refusedText())
}

var (
	refusedText   = sync.OnceValue(func() [][2]rune { return computeRefused(false) })
	refusedDetail = sync.OnceValue(func() [][2]rune { return computeRefused(true) })
)

func computeRefused(detail bool) [][2]rune {
	var out [][2]rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r == 0xD800 {
			r = 0xE000
		}
		if textProblem(r, detail) == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == r-1 && r != 0x10000 {
			out[n-1][1] = r
		} else {
			out = append(out, [2]rune{r, r})
		}
	}
	return out
}

// textPattern is the pattern of the text or detail rules; see above.
func textPattern(detail bool) string {
	var class strings.Builder
	var astral []string
	for _, rg := range refusedRanges(detail) {
		if rg[0] > 0xFFFF {
			for r := rg[0]; r <= rg[1]; r++ {
				astral = append(astral, string(r))
			}
			continue
		}
		fmt.Fprintf(&class, `\u%04x`, rg[0])
		if rg[1] != rg[0] {
			fmt.Fprintf(&class, `-\u%04x`, rg[1])
		}
	}
	return `^(?:(?![` + class.String() + `]|` + strings.Join(astral, "|") + `)(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff]))*(?![\s\S])`
}

// asciiJSON encodes s as a JSON string the way the schema files spell it:
// ASCII only, astral characters as surrogate-pair escapes.
func asciiJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xFFFF:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func textDef(detail bool) string {
	if detail {
		return "detail"
	}
	return "text"
}

// schemaAt follows path from a schema's root.
func schemaAt(root schemaNode, path []string) (schemaNode, bool) {
	n := root
	for _, k := range path {
		next, ok := n[k].(schemaNode)
		if !ok {
			return nil, false
		}
		n = next
	}
	return n, true
}

// TestSchemaTextPatterns checks the $defs patterns against the Go rules, and
// that every free-text property of every schema is in textFields, refers to
// the right $defs entry and has Go's limits.
func TestSchemaTextPatterns(t *testing.T) {
	for _, detail := range []bool{false, true} {
		want := textPattern(detail)
		for _, name := range SchemaNames() {
			def, ok := schemaAt(loadSchema(t, name), []string{"$defs", textDef(detail)})
			if !ok {
				continue
			}
			if def["type"] != "string" || def["pattern"] != want {
				t.Errorf("%s: $defs/%s has type %v and pattern\n%v\nwant pattern (as the schema file spells it)\n%s", name, textDef(detail), def["type"], asciiJSON(fmt.Sprint(def["pattern"])), asciiJSON(want))
			}
		}
	}
	fields := map[string]textField{}
	for _, f := range textFields() {
		fields[f.schema+":"+strings.Join(f.path, "/")] = f
	}
	seen := map[string]bool{}
	for _, name := range SchemaNames() {
		root := loadSchema(t, name)
		walkProperties(root, nil, func(path []string, p schemaNode) {
			key := name + ":" + strings.Join(path, "/")
			f, ok := fields[key]
			if !ok {
				r := resolve(t, root, p)
				if ref, _ := p["$ref"].(string); ref == "#/$defs/text" || ref == "#/$defs/detail" || (r["type"] == "string" && r["pattern"] == nil && r["enum"] == nil && r["const"] == nil && r["format"] == nil) {
					t.Errorf("%s: free-text property missing from textFields", key)
				}
				return
			}
			seen[key] = true
			if p["$ref"] != "#/$defs/"+textDef(f.detail) {
				t.Errorf("%s: $ref %v, want #/$defs/%s", key, p["$ref"], textDef(f.detail))
			}
			if p["maxLength"] != float64(f.limit) {
				t.Errorf("%s: maxLength %v, Go's limit is %d", key, p["maxLength"], f.limit)
			}
			required := f.set("").Validate() != nil
			if min, _ := p["minLength"].(float64); (min == 1) != required || (min != 0 && min != 1) {
				t.Errorf("%s: minLength %v, but Go required=%v", key, p["minLength"], required)
			}
		})
	}
	for key := range fields {
		if !seen[key] {
			t.Errorf("%s: in textFields but not in the schema", key)
		}
	}
}

// walkProperties calls fn with every entry of every "properties" object in
// the schema, and its path.
func walkProperties(n schemaNode, path []string, fn func([]string, schemaNode)) {
	for k, v := range n {
		child, ok := v.(schemaNode)
		if !ok {
			continue
		}
		p := append(slices.Clip(path), k)
		if k == "properties" {
			for name, pv := range child {
				if prop, ok := pv.(schemaNode); ok {
					fn(append(slices.Clip(p), name), prop)
					walkProperties(prop, append(slices.Clip(p), name), fn)
				}
			}
			continue
		}
		walkProperties(child, p, fn)
	}
}

const textMarker = "@@TEXT@@"

// textInstance is one message with c in field f at the middle or the end:
// its JSON, and Go's verdict on it.
type textInstance struct {
	name string
	f    textField
	json []byte
	ok   bool
}

func textInstances(t *testing.T) []textInstance {
	t.Helper()
	var out []textInstance
	for _, f := range textFields() {
		for _, c := range textChars {
			want := c.text
			if f.detail {
				want = c.detail
			}
			vals := []string{"x" + c.s + "y", "x" + c.s}
			if c.json != "" {
				vals = []string{"x" + textMarker + "y", "x" + textMarker}
			}
			for i, v := range vals {
				name := strings.ReplaceAll(fmt.Sprintf("%s-%s-%s-%d", f.schema, f.name, c.name, i), " ", "_")
				m := f.set(v)
				raw, _ := json.Marshal(m) // not Encode: it refuses
				if c.json != "" {
					raw = []byte(strings.Replace(string(raw), textMarker, c.json, 1))
				} else if goOK := m.Validate() == nil; goOK != want {
					t.Errorf("%s: Validate ok=%v, want %v", name, goOK, want)
				}
				if !strings.Contains(string(raw), "x") || strings.Contains(string(raw), textMarker) {
					t.Fatalf("%s: bad instance %s", name, raw)
				}
				back := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
				err := decode(raw, MaxResultBytes, f.schema == "job" || f.schema == "cancel", back)
				if (err == nil) != want {
					t.Errorf("%s: decode %s = %v, want ok=%v", name, raw, err, want)
				}
				out = append(out, textInstance{name, f, raw, err == nil})
			}
		}
	}
	return out
}

// TestSchemaTextCharacters puts every character of textChars into every
// free-text field and checks that python3-jsonschema judges each message as
// Go's Validate and decoder do.
func TestSchemaTextCharacters(t *testing.T) {
	py := debianPython(t)
	dir := t.TempDir()
	var input strings.Builder
	want := map[string]textInstance{}
	for _, in := range textInstances(t) {
		p := filepath.Join(dir, in.name+".json")
		if err := os.WriteFile(p, in.json, 0o644); err != nil {
			t.Fatal(err)
		}
		schema := filepath.Join(dir, in.f.schema+".schema.json")
		if _, err := os.Stat(schema); err != nil {
			b, _ := Schema(in.f.schema)
			if err := os.WriteFile(schema, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		input.WriteString(schema + " " + p + "\n")
		want[p] = in
	}
	cmd := exec.Command(py, "-c", validateScript)
	cmd.Stdin = strings.NewReader(input.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("validator: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		verdict, rest, _ := strings.Cut(line, " ")
		path, msg, _ := strings.Cut(rest, " ")
		in, ok := want[path]
		if !ok {
			t.Fatalf("validator: %s", line)
		}
		if (verdict == "valid") != in.ok {
			t.Errorf("%s: schema says %s (%s), Go ok=%v: %s", in.name, verdict, msg, in.ok, in.json)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("validator judged %d messages, want %d", seen, len(want))
	}
}

// refusedWithSurrogates is what a pattern must refuse of all code points:
// what Go refuses, and the lone surrogates.
func refusedWithSurrogates(detail bool) [][2]rune {
	rs := refusedRanges(detail)
	i, _ := slices.BinarySearchFunc(rs, rune(0xD800), func(r [2]rune, x rune) int { return int(r[0] - x) })
	rs = slices.Insert(rs, i, [2]rune{0xD800, 0xDFFF})
	return rs
}

// schemaPatternArgs names, for the scripts, each schema file with a text
// or detail $defs entry: path#def.
func schemaPatternArgs(t *testing.T) (args []string, detail map[string]bool) {
	dir := t.TempDir()
	detail = map[string]bool{}
	for _, name := range SchemaNames() {
		b, _ := Schema(name)
		p := filepath.Join(dir, name+".schema.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, d := range []bool{false, true} {
			if _, ok := schemaAt(loadSchema(t, name), []string{"$defs", textDef(d)}); ok {
				args = append(args, p+"#"+textDef(d))
				detail[p+"#"+textDef(d)] = d
			}
		}
	}
	if len(args) == 0 {
		t.Fatal("no schema has $defs text or detail")
	}
	return args, detail
}

// allCodePointsScript prints, for each path#def argument, the ranges of code
// points c for which re.search(pattern, c) fails: the call python3-jsonschema
// makes for "pattern". Equal patterns are run once.
const allCodePointsScript = `
import json, re, sys
done = {}
for arg in sys.argv[1:]:
    path, name = arg.split("#")
    pattern = json.load(open(path, encoding="utf-8"))["$defs"][name]["pattern"]
    if pattern not in done:
        ranges = []
        for cp in range(0x110000):
            if re.search(pattern, chr(cp)) is None:
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1][1] = cp
                else:
                    ranges.append([cp, cp])
        done[pattern] = json.dumps(ranges, separators=(",", ":"))
    print(arg, "-", done[pattern])
`

// TestSchemaTextAllCodePoints checks every code point against the schema
// patterns with Python's re.
func TestSchemaTextAllCodePoints(t *testing.T) {
	py := debianPython(t)
	args, detail := schemaPatternArgs(t)
	out, err := exec.Command(py, append([]string{"-c", allCodePointsScript}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	checkRangeLines(t, "python re", strings.Split(strings.TrimSpace(string(out)), "\n"), detail, len(args))
}

// checkRangeLines checks lines "path#def flags ranges" against Go's rules.
func checkRangeLines(t *testing.T, who string, lines []string, detail map[string]bool, want int) {
	t.Helper()
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("%s: %s", who, line)
		}
		d, ok := detail[f[0]]
		if !ok {
			t.Fatalf("%s: %s", who, line)
		}
		var got [][2]rune
		if err := json.Unmarshal([]byte(f[2]), &got); err != nil {
			t.Fatalf("%s: %s: %v", who, line, err)
		}
		if w := refusedWithSurrogates(d); !slices.Equal(got, w) {
			t.Errorf("%s (flags %s): %s refuses %s, Go refuses %s", who, f[1], filepath.Base(f[0]), fmtRanges(got), fmtRanges(w))
		}
	}
	if len(lines) != want {
		t.Errorf("%s: %d verdicts, want %d:\n%s", who, len(lines), want, strings.Join(lines, "\n"))
	}
}

func fmtRanges(rs [][2]rune) string {
	var s []string
	for _, r := range rs {
		if r[0] == r[1] {
			s = append(s, fmt.Sprintf("%U", r[0]))
		} else {
			s = append(s, fmt.Sprintf("%U-%U", r[0], r[1]))
		}
	}
	return strings.Join(s, " ")
}

// ecmaFlags are the RegExp flags a JSON Schema validator in JavaScript may
// use: none (older ajv), u (ajv's default, the JSON Schema test suite) and
// v (ES2024).
var ecmaFlags = []string{"", "u", "v"}

// ecmaScript does for node what allCodePointsScript does for Python, under
// each of ecmaFlags, on UTF-16 strings (a lone surrogate as one code unit),
// then judges the values of the JSON file named by the first argument.
const ecmaScript = `
const fs = require("fs");
const [values, ...args] = process.argv.slice(1);
const strs = JSON.parse(fs.readFileSync(values, "utf8"));
const done = new Map();
for (const arg of args) {
  const [path, name] = arg.split("#");
  const pattern = JSON.parse(fs.readFileSync(path, "utf8"))["$defs"][name]["pattern"];
  for (const flags of FLAGS) {
    // The v flag is from ECMAScript 2024 (Node 20); Debian 12's Node 18
    // lacks it, and a validator there cannot use it either.
    try { new RegExp("", flags); } catch (e) { continue; }
    const rx = new RegExp(pattern, flags);
    const key = flags + "/" + pattern;
    if (!done.has(key)) {
      const ranges = [];
      for (let cp = 0; cp <= 0x10ffff; cp++) {
        const s = cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
        if (!rx.test(s)) {
          if (ranges.length && ranges[ranges.length - 1][1] === cp - 1) ranges[ranges.length - 1][1] = cp;
          else ranges.push([cp, cp]);
        }
      }
      done.set(key, JSON.stringify(ranges));
    }
    console.log("ranges " + arg + " " + (flags || "-") + " " + done.get(key));
    console.log("values " + arg + " " + (flags || "-") + " " + strs.map((s) => (rx.test(s) ? "1" : "0")).join(""));
  }
}
`

// TestSchemaTextECMA checks the schema patterns as ECMA-262 regular
// expressions, the dialect JSON Schema names, with node: every code point,
// and every value of textChars, with and without the u and v flags (v where
// the node at hand knows it). make deps installs node (Debian's nodejs).
func TestSchemaTextECMA(t *testing.T) {
	node := testenv.LookPath(t, "node")
	args, detail := schemaPatternArgs(t)
	// The values as JSON string literals, so that lone surrogates survive.
	var lits []string
	var wantText, wantDetail []bool
	for _, c := range textChars {
		lit := c.json
		if lit == "" {
			b, _ := json.Marshal(c.s)
			lit = strings.Trim(string(b), `"`)
		}
		for _, v := range []string{"x" + lit + "y", "x" + lit} {
			lits = append(lits, `"`+v+`"`)
			wantText, wantDetail = append(wantText, goJudgesLiteral(t, v, false)), append(wantDetail, goJudgesLiteral(t, v, true))
		}
	}
	values := filepath.Join(t.TempDir(), "values.json")
	if err := os.WriteFile(values, []byte("["+strings.Join(lits, ",")+"]"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags, _ := json.Marshal(ecmaFlags)
	script := strings.Replace(ecmaScript, "FLAGS", string(flags), 1)
	out, err := exec.Command(node, append([]string{"-e", script, "--", values}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var ranges []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		if kind == "ranges" {
			ranges = append(ranges, rest)
			continue
		}
		f := strings.Fields(rest)
		if kind != "values" || len(f) != 3 || len(f[2]) != len(lits) {
			t.Fatalf("node: %s", line)
		}
		want := wantText
		if detail[f[0]] {
			want = wantDetail
		}
		for i, v := range f[2] {
			if (v == '1') != want[i] {
				t.Errorf("node (flags %s): %s judges %s %c, Go ok=%v", f[1], filepath.Base(f[0]), lits[i], v, want[i])
			}
		}
	}
	checkRangeLines(t, "node", ranges, detail, len(args)*len(ecmaFlags))
}

// goJudgesLiteral is Go's verdict on the body of a JSON string literal as
// text or detail: the decoder's Unicode check, then the text rules.
func goJudgesLiteral(t *testing.T, body string, detail bool) bool {
	lit := `"` + body + `"`
	if checkUnicode([]byte(lit)) != nil {
		return false
	}
	var s string
	if err := json.Unmarshal([]byte(lit), &s); err != nil {
		t.Fatalf("%s: %v", lit, err)
	}
	return fits(s, 1<<20, detail)
}
