package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/validation"
)

// redoclyVersion pins the linter: a new release with new rules must not
// fail a build that changed nothing.
const redoclyVersion = "2.77.0"

// spec is openapi.yaml as JSON values (map[string]any, []any, string,
// float64, bool, nil), so that examples compare with what the server
// writes.
type spec map[string]any

func loadSpec(t *testing.T) spec {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	j, err := json.Marshal(jsonOf(y))
	if err != nil {
		t.Fatalf("openapi.yaml as JSON: %v", err)
	}
	var s spec
	if err := json.Unmarshal(j, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// jsonOf turns YAML's map[interface{}]interface{} into JSON's maps.
func jsonOf(v any) any {
	switch v := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonOf(e)
		}
		return m
	case []any:
		for i := range v {
			v[i] = jsonOf(v[i])
		}
	}
	return v
}

// deref follows a local $ref ("#/components/...") to its object.
func (s spec) deref(v any) map[string]any {
	m, _ := v.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = map[string]any(s)
		for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
			next, _ := cur.(map[string]any)
			cur = next[tok]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type operation struct {
	method, path string // "GET", "/v1/letters/{id}"
	op           map[string]any
	params       []map[string]any // the path item's and the operation's
}

func (s spec) operations() []operation {
	paths, _ := s["paths"].(map[string]any)
	var out []operation
	for p, item := range paths {
		pi := s.deref(item)
		for _, m := range httpMethods {
			op, ok := pi[m].(map[string]any)
			if !ok {
				continue
			}
			o := operation{method: strings.ToUpper(m), path: p, op: op}
			for _, list := range []any{pi["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, prm := range ps {
					o.params = append(o.params, s.deref(prm))
				}
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// secured reports whether the operation needs the API key: its own
// security, else the document's.
func (s spec) secured(o operation) bool {
	sec, ok := o.op["security"].([]any)
	if !ok {
		sec, _ = s["security"].([]any)
	}
	return len(sec) > 0
}

// The description passes redocly's recommended rules, linted offline:
// a proxy that fails the test when anything connects to it stands in for
// the network.
func TestOpenAPILint(t *testing.T) {
	bin := redocly(t)
	dir := t.TempDir()
	// operation-4xx-response is off because the operational GETs
	// (/healthz, /readyz, /metrics, /v1/openapi.yaml) answer every
	// request; a 4xx documented for them would be false.
	// TestOpenAPIErrorCodes checks instead that every operation behind
	// the API key documents its 401.
	cfg := "extends:\n  - recommended\ntelemetry: off\nrules:\n  operation-4xx-response: off\n"
	if err := os.WriteFile(filepath.Join(dir, "redocly.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	var dialled atomic.Int32
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	abs, err := filepath.Abs("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "lint", "--config", filepath.Join(dir, "redocly.yaml"), "--format", "json", abs)
	cmd.Dir = dir
	proxy := "http://" + trap.Addr().String()
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true",
		"HTTP_PROXY="+proxy, "HTTPS_PROXY="+proxy, "http_proxy="+proxy, "https_proxy="+proxy, "NO_PROXY=", "no_proxy=",
		"TMPDIR="+dir, "HOME="+dir, "XDG_CONFIG_HOME="+dir, "NO_COLOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report struct {
		Totals struct {
			Errors, Warnings int
		} `json:"totals"`
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Location []struct {
				Pointer string `json:"pointer"`
			} `json:"location"`
		} `json:"problems"`
	}
	if jerr := json.Unmarshal(out, &report); jerr != nil {
		t.Fatalf("redocly lint: %v (%v)\n%s\n%s", err, jerr, out, stderr.Bytes())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if err != nil && len(report.Problems) == 0 {
		t.Errorf("redocly lint: %v\n%s", err, stderr.Bytes())
	}
	if n := dialled.Load(); n > 0 {
		t.Errorf("redocly lint tried the network %d times", n)
	}
	t.Logf("redocly %s: %d errors, %d warnings", redoclyVersion, report.Totals.Errors, report.Totals.Warnings)
}

// redocly returns the pinned redocly CLI, which make deps installs from
// the npm registry into the user's cache (outside the repository): the
// test itself reaches nothing beyond loopback.
func redocly(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node (Debian package nodejs) for redocly lint: %v", err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(makefile), "REDOCLY_VERSION := "+redoclyVersion+"\n") {
		t.Fatalf("the Makefile installs another redocly than %s", redoclyVersion)
	}
	cache, err := os.UserCacheDir() // $XDG_CACHE_HOME, else ~/.cache, as the Makefile
	if err != nil {
		testenv.Unavailable(t, "no cache directory for the redocly CLI: %v", err)
	}
	bin := filepath.Join(cache, "teken-npm", "redocly-"+redoclyVersion, "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "@redocly/cli %s (make deps installs it): %v", redoclyVersion, err)
	}
	return bin
}

// Every route routes() registers is described, and every described
// operation is a route; the routes behind the API key are the ones the
// description secures.
func TestOpenAPIRoutesMatchTheServer(t *testing.T) {
	served := servedRoutes(t)
	s := loadSpec(t)
	described := map[string]bool{}
	for _, o := range s.operations() {
		key := o.method + " " + o.path
		described[key] = true
		auth, ok := served[key]
		switch {
		case !ok:
			t.Errorf("openapi.yaml describes %s, which routes() does not serve", key)
		case auth != s.secured(o):
			t.Errorf("%s: routes() needs a key %v, openapi.yaml security says %v", key, auth, s.secured(o))
		}
	}
	for key := range served {
		if !described[key] {
			t.Errorf("routes() serves %s, which openapi.yaml does not describe", key)
		}
	}
	if len(served) < 13 {
		t.Errorf("found only %d routes in routes(): the parse missed some", len(served))
	}
}

// servedRoutes reads the patterns routes() registers from http.go: with
// api(...) (behind the key), mux.Handle and mux.HandleFunc (open). The
// catch-all "/" is the 404/405 answer, not a route.
func servedRoutes(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "http.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "routes" && d.Recv != nil {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("http.go: no method routes")
	}
	out := map[string]bool{}
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false // the api helper's own mux.Handle, and handlers
		}
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		var auth bool
		switch fun := call.Fun.(type) {
		case *ast.Ident:
			if fun.Name != "api" {
				return true
			}
			auth = true
		case *ast.SelectorExpr:
			if x, ok := fun.X.(*ast.Ident); !ok || x.Name != "mux" || (fun.Sel.Name != "Handle" && fun.Sel.Name != "HandleFunc") {
				return true
			}
		default:
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("routes(): a pattern that is not a string literal: the description cannot be checked against it")
			return true
		}
		pattern, _ := strconv.Unquote(lit.Value)
		if pattern == "/" {
			return true
		}
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			t.Errorf("routes(): pattern %q without a method", pattern)
			return true
		}
		out[method+" "+path] = auth
		return true
	})
	return out
}

// Every error code the catalogues know is in the Error schema and back,
// in both languages, and every operation behind the key documents 401.
func TestOpenAPIErrorCodes(t *testing.T) {
	s := loadSpec(t)
	code := s.deref(s.deref(s.deref(s.deref(s["components"].(map[string]any)["schemas"].(map[string]any)["Error"])["properties"].(map[string]any)["error"])["properties"].(map[string]any)["code"]))
	var documented []string
	for _, c := range code["enum"].([]any) {
		documented = append(documented, c.(string))
	}
	slices.Sort(documented)
	for _, lang := range []string{"en", "id"} {
		raw, err := os.ReadFile(filepath.Join("i18n", lang+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var cat map[string]string
		if err := json.Unmarshal(raw, &cat); err != nil {
			t.Fatal(err)
		}
		var known []string
		for c := range cat {
			known = append(known, c)
		}
		slices.Sort(known)
		if !slices.Equal(known, documented) {
			t.Errorf("i18n/%s.json codes %v, openapi.yaml Error.code %v", lang, known, documented)
		}
	}
	for _, o := range s.operations() {
		if _, ok := o.op["responses"].(map[string]any)["401"]; s.secured(o) && !ok {
			t.Errorf("%s %s needs the key but documents no 401", o.method, o.path)
		}
	}
}

// The schemas name exactly the JSON fields of the Go types, and require
// every field Go always writes.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	s := loadSpec(t)
	schemas := s["components"].(map[string]any)["schemas"].(map[string]any)
	for name, v := range map[string]any{
		"SubmitRequest": gateway.SubmitRequest{}, "SubmitSigner": gateway.SubmitSigner{}, "SubmitDocument": gateway.SubmitDocument{},
		"Visible": api.Visible{}, "Field": api.Field{}, "CancelRequest": gateway.CancelRequest{},
		"Letter": gateway.LetterView{}, "Signer": gateway.SubmitSigner{}, "Receipt": gateway.ReceiptView{},
		"Document": gateway.DocumentView{}, "LetterList": gateway.ListView{}, "Result": api.Result{},
		"SignedDocument": api.SignedDocument{}, "Delivery": gateway.DeliveryView{}, "Event": gateway.EventView{},
		"Terminal": gateway.TerminalView{}, "WebhookEvent": gateway.WebhookEvent{}, "WebhookLetter": gateway.WebhookLetter{},
		"Verdict": validation.Verdict{}, "SignatureVerdict": validation.SignatureVerdict{}, "Check": validation.Check{},
	} {
		sc := s.deref(schemas[name])
		if sc == nil {
			t.Errorf("no schema %s", name)
			continue
		}
		props, _ := sc["properties"].(map[string]any)
		required := map[string]bool{}
		reqs, _ := sc["required"].([]any)
		for _, r := range reqs {
			required[r.(string)] = true
		}
		fields := map[string]bool{}
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			tag := typ.Field(i).Tag.Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "-" || !typ.Field(i).IsExported() {
				continue
			}
			fields[jname] = true
			if _, ok := props[jname]; !ok {
				t.Errorf("%s (%s): Go field %q is not in the schema", name, typ, jname)
			}
			if !strings.Contains(opts, "omitempty") && !required[jname] {
				t.Errorf("%s (%s): %q is always written but not required", name, typ, jname)
			}
		}
		for p := range props {
			if !fields[p] {
				t.Errorf("%s (%s): schema property %q is no Go field", name, typ, p)
			}
		}
		for r := range required {
			if !fields[r] {
				t.Errorf("%s (%s): required %q is no Go field", name, typ, r)
			}
		}
	}
}

// Every example of the description, of a request or a response or a
// webhook, validates against its schema.
func TestOpenAPIExamplesMatchSchemas(t *testing.T) {
	s := loadSpec(t)
	n := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if sc, ok := v["schema"]; ok {
				for _, ex := range examplesOf(s, v) {
					n++
					for _, p := range s.validate(sc, ex.value, at+"/"+ex.name) {
						t.Error(p)
					}
				}
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(at+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", map[string]any(s))
	if n < 10 {
		t.Errorf("only %d examples checked", n)
	}
}

type example struct {
	name  string
	value any
}

// examplesOf returns the examples of a media type or parameter object.
func examplesOf(s spec, m map[string]any) []example {
	var out []example
	if v, ok := m["example"]; ok {
		out = append(out, example{"example", v})
	}
	exs, _ := m["examples"].(map[string]any)
	names := make([]string, 0, len(exs))
	for k := range exs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if e := s.deref(exs[k]); e != nil {
			out = append(out, example{k, e["value"]})
		}
	}
	return out
}

// Every request example, sent to a real gateway, is accepted, and every
// answer validates against the schema documented for its status. Path
// parameters take the letters the examples made: signed at the kiosk,
// so that the result and the signed PDF exist too.
func TestOpenAPIRequestExamplesAreAccepted(t *testing.T) {
	s := loadSpec(t)
	r := newRig(t)
	ops := s.operations()
	find := func(method, path string) operation {
		for _, o := range ops {
			if o.method == method && o.path == path {
				return o
			}
		}
		t.Fatalf("openapi.yaml: no %s %s", method, path)
		return operation{}
	}

	// Every example of the submit body, in JSON and multipart; the first
	// with the Idempotency-Key example, then again under it.
	submit := find("POST", "/v1/letters")
	var idemKey string
	for _, p := range submit.params {
		if p["name"] == "Idempotency-Key" {
			idemKey, _ = p["example"].(string)
		}
	}
	if idemKey == "" {
		t.Fatal("openapi.yaml: no Idempotency-Key example")
	}
	letters := map[string]gateway.LetterView{} // by example name
	content := s.deref(submit.op["requestBody"])["content"].(map[string]any)
	for _, mt := range []string{"application/json", "multipart/form-data"} {
		media := s.deref(content[mt])
		exs := examplesOf(s, media)
		if len(exs) == 0 {
			t.Errorf("submit: no %s example", mt)
		}
		for _, ex := range exs {
			buf, ct := encodeBody(t, s, media, mt, ex.value)
			body := buf.Bytes()
			header := map[string]string{}
			if len(letters) == 0 {
				header["Idempotency-Key"] = idemKey
			}
			status, raw := r.send(t, s, submit, "/v1/letters", bytes.NewReader(body), ct, header)
			if status != http.StatusCreated {
				t.Fatalf("submit example %s: %d %s", ex.name, status, raw)
			}
			var l gateway.LetterView
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatal(err)
			}
			if len(letters) == 0 {
				status, raw := r.send(t, s, submit, "/v1/letters", bytes.NewReader(body), ct, header)
				var again gateway.LetterView
				_ = json.Unmarshal(raw, &again)
				if status != http.StatusOK || again.ID != l.ID {
					t.Fatalf("submit example %s again under %s: %d %s", ex.name, idemKey, status, raw)
				}
			}
			letters[ex.name] = l
		}
	}

	// The official signs the letters addressed to them by NIP; the memo,
	// for a certificate no token here holds, waits to be cancelled.
	for _, name := range []string{"undangan", "surat-edaran", "nota-dinas"} {
		if _, ok := letters[name]; !ok {
			t.Fatalf("openapi.yaml: no submit example %q, which this test signs or cancels", name)
		}
	}
	signed, other := letters["undangan"], letters["nota-dinas"]
	both := []string{signed.ID, letters["surat-edaran"].ID}
	for _, id := range both {
		waitState(t, r, id, "stored")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.official.Card.Insert(ctx, r.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k := tekentest.OpenKiosk(t, r.kioskURL)
	k.Await("the letters", func(v kiosk.View) bool {
		var ids []string
		for _, j := range v.Jobs {
			ids = append(ids, j.ID)
		}
		slices.Sort(ids)
		want := slices.Clone(both)
		slices.Sort(want)
		return v.CanSign && slices.Equal(ids, want)
	})
	if status, answer := k.Sign(both, r.official.PIN); status != http.StatusOK {
		t.Fatalf("sign at the kiosk: %d %v", status, answer)
	}
	for _, id := range both {
		waitState(t, r, id, "signed")
	}
	waitState(t, r, other.ID, "stored")

	// Every other operation with its examples; the cancel last, of the
	// letter nobody signs.
	var rest []operation
	for _, o := range ops {
		if o.method+" "+o.path != "POST /v1/letters" {
			rest = append(rest, o)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool {
		return !strings.HasSuffix(rest[i].path, "/cancel") && strings.HasSuffix(rest[j].path, "/cancel")
	})
	for _, o := range rest {
		t.Run(o.method+" "+o.path, func(t *testing.T) {
			id := signed.ID
			if strings.HasSuffix(o.path, "/cancel") {
				id = other.ID
			}
			target, header, q := o.path, map[string]string{}, neturl.Values{}
			for _, p := range o.params {
				name, _ := p["name"].(string)
				ex, ok := p["example"]
				switch {
				case p["in"] == "path" && name == "id":
					target = strings.ReplaceAll(target, "{id}", id)
				case !ok:
					if p["required"] == true {
						t.Fatalf("parameter %s: required, and no example", name)
					}
				case p["in"] == "path":
					target = strings.ReplaceAll(target, "{"+name+"}", fmt.Sprint(ex))
				case p["in"] == "query":
					q.Set(name, fmt.Sprint(ex))
				case p["in"] == "header":
					header[name] = fmt.Sprint(ex)
				}
			}
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			type call struct {
				name, ct string
				body     []byte
			}
			calls := []call{{name: "no body"}}
			if rb := s.deref(o.op["requestBody"]); rb != nil {
				calls = nil
				for mt, media := range rb["content"].(map[string]any) {
					for _, ex := range examplesOf(s, s.deref(media)) {
						body, ct := encodeBody(t, s, s.deref(media), mt, ex.value)
						calls = append(calls, call{ex.name, ct, body.Bytes()})
					}
				}
			}
			for _, c := range calls {
				var body io.Reader
				if c.body != nil {
					body = bytes.NewReader(c.body)
				}
				status, raw := r.send(t, s, o, target, body, c.ct, header)
				if status < 200 || status > 299 {
					t.Errorf("%s %s (%s): %d %s", o.method, target, c.name, status, raw)
				}
			}
		})
	}

	// The webhooks the letter system took are what the description says
	// (as the sink decoded them: it keeps no raw bodies, and the gateway
	// encodes the same Go type).
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if got := r.hooks.states(signed.ID); journey(got) != "queued,stored,signed" {
			return fmt.Errorf("webhooks %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hook := s.deref(s.deref(s["webhooks"].(map[string]any)["letterChanged"])["post"].(map[string]any)["requestBody"])
	schema := s.deref(hook["content"].(map[string]any)["application/json"])["schema"]
	r.hooks.mu.Lock()
	defer r.hooks.mu.Unlock()
	for _, ev := range r.hooks.events {
		raw, _ := json.Marshal(ev)
		var v any
		_ = json.Unmarshal(raw, &v)
		for _, p := range s.validate(schema, v, "webhook "+ev.ID) {
			t.Error(p)
		}
	}
}

// encodeBody makes a request body of an example: JSON, or a multipart
// form with each property a part, typed by the media type's encoding.
func encodeBody(t *testing.T, s spec, media map[string]any, mt string, value any) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	switch mt {
	case "application/json":
		if err := json.NewEncoder(&b).Encode(value); err != nil {
			t.Fatal(err)
		}
		return &b, mt
	case "multipart/form-data":
		mw := multipart.NewWriter(&b)
		enc, _ := media["encoding"].(map[string]any)
		fields, _ := value.(map[string]any)
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, name := range names {
			ct := "application/octet-stream"
			if e := s.deref(enc[name]); e != nil {
				ct, _ = e["contentType"].(string)
			}
			var part []byte
			if ct == "application/json" {
				part, _ = json.Marshal(fields[name])
			} else {
				part = []byte(fmt.Sprint(fields[name]))
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Type", ct)
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, name))
			if ct != "application/json" {
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, name, name))
			}
			w, err := mw.CreatePart(h)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write(part)
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		return &b, mw.FormDataContentType()
	}
	t.Fatalf("no encoder for request examples of %s", mt)
	return nil, ""
}

// send makes one call of operation o, with the key when o is secured, and
// checks the answer against the response documented for its status.
func (r *rig) send(t *testing.T, s spec, o operation, target string, body io.Reader, ct string, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(o.method, r.api+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if s.secured(o) {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	responses := o.op["responses"].(map[string]any)
	doc, ok := responses[strconv.Itoa(res.StatusCode)]
	if !ok {
		doc, ok = responses[strconv.Itoa(res.StatusCode/100)+"XX"]
	}
	if !ok {
		doc, ok = responses["default"]
	}
	if !ok {
		t.Errorf("%s %s: status %d is not documented: %s", o.method, target, res.StatusCode, raw)
		return res.StatusCode, raw
	}
	resp := s.deref(doc)
	contents, _ := resp["content"].(map[string]any)
	got, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	media, ok := contents[got]
	switch {
	case len(contents) == 0 && len(raw) == 0:
	case !ok:
		t.Errorf("%s %s: %d answered %s, documented %v", o.method, target, res.StatusCode, got, keys(contents))
	case got == "application/json":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s %s: %d: not JSON: %v", o.method, target, res.StatusCode, err)
			break
		}
		for _, p := range s.validate(s.deref(media)["schema"], v, fmt.Sprintf("%s %s %d", o.method, target, res.StatusCode)) {
			t.Error(p)
		}
	case got == "application/pdf" && !bytes.HasPrefix(raw, []byte("%PDF-")):
		t.Errorf("%s %s: application/pdf that is no PDF", o.method, target)
	case o.path == "/v1/openapi.yaml":
		if want, _ := os.ReadFile("openapi.yaml"); !bytes.Equal(raw, want) {
			t.Errorf("%s: not openapi.yaml", o.path)
		}
	}
	return res.StatusCode, raw
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// validate checks v against schema, for the part of JSON Schema 2020-12
// the description uses; a keyword it does not know is a problem, so the
// description cannot outgrow the check unnoticed.
func (s spec) validate(schema any, v any, at string) []string {
	sc, ok := schema.(map[string]any)
	if !ok {
		if b, ok := schema.(bool); ok && !b {
			return []string{at + ": not allowed"}
		}
		return nil
	}
	var out []string
	bad := func(format string, a ...any) { out = append(out, at+": "+fmt.Sprintf(format, a...)) }
	for kw, arg := range sc {
		switch kw {
		case "description", "title", "example", "examples", "default", "deprecated", "readOnly", "writeOnly", "contentMediaType":
		case "$ref":
			out = append(out, s.validate(s.deref(map[string]any{"$ref": arg}), v, at)...)
		case "type":
			types, ok := arg.([]any)
			if !ok {
				types = []any{arg}
			}
			if !slices.ContainsFunc(types, func(ty any) bool { return isType(ty.(string), v) }) {
				bad("%s is not %v", brief(v), arg)
			}
		case "enum":
			if !slices.ContainsFunc(arg.([]any), func(e any) bool { return reflect.DeepEqual(e, v) }) {
				bad("%s is not one of %v", brief(v), arg)
			}
		case "const":
			if !reflect.DeepEqual(arg, v) {
				bad("%s is not %v", brief(v), arg)
			}
		case "properties":
			if m, ok := v.(map[string]any); ok {
				for name, sub := range arg.(map[string]any) {
					if e, ok := m[name]; ok {
						out = append(out, s.validate(sub, e, at+"."+name)...)
					}
				}
			}
		case "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				props, _ := sc["properties"].(map[string]any)
				for name, e := range m {
					if _, ok := props[name]; !ok {
						out = append(out, s.validate(arg, e, at+"."+name)...)
					}
				}
			}
		case "required":
			if m, ok := v.(map[string]any); ok {
				for _, name := range arg.([]any) {
					if _, ok := m[name.(string)]; !ok {
						bad("%s is required", name)
					}
				}
			}
		case "items":
			if a, ok := v.([]any); ok {
				for i, e := range a {
					out = append(out, s.validate(arg, e, fmt.Sprintf("%s[%d]", at, i))...)
				}
			}
		case "minItems", "maxItems":
			if a, ok := v.([]any); ok && !within(kw, float64(len(a)), arg.(float64)) {
				bad("%d items, %s %v", len(a), kw, arg)
			}
		case "minLength", "maxLength":
			if str, ok := v.(string); ok && !within(kw, float64(len([]rune(str))), arg.(float64)) {
				bad("%d characters, %s %v", len([]rune(str)), kw, arg)
			}
		case "minimum", "maximum":
			if f, ok := v.(float64); ok && !within(kw, f, arg.(float64)) {
				bad("%v, %s %v", f, kw, arg)
			}
		case "pattern":
			if str, ok := v.(string); ok {
				re, err := regexp.Compile(arg.(string))
				if err != nil {
					bad("pattern %q: %v", arg, err)
				} else if !re.MatchString(str) {
					bad("%s does not match %s", brief(v), arg)
				}
			}
		case "format":
			str, ok := v.(string)
			switch {
			case !ok:
			case arg == "date-time":
				if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
					bad("%s is no date-time: %v", brief(v), err)
				}
			case arg == "uri":
				if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:\S+$`).MatchString(str) {
					bad("%s is no URI", brief(v))
				}
			}
		case "contentEncoding":
			if str, ok := v.(string); ok && arg == "base64" {
				if _, err := base64.StdEncoding.DecodeString(str); err != nil {
					bad("not standard base64: %v", err)
				}
			}
		case "allOf", "anyOf", "oneOf":
			n := 0
			var first []string
			for _, sub := range arg.([]any) {
				p := s.validate(sub, v, at)
				if len(p) == 0 {
					n++
				} else if first == nil {
					first = p
				}
			}
			switch {
			case kw == "allOf" && n != len(arg.([]any)), kw == "anyOf" && n == 0:
				out = append(out, first...)
			case kw == "oneOf" && n != 1:
				bad("matches %d of oneOf, want 1", n)
			}
		default:
			bad("schema keyword %q is not known to this check", kw)
		}
	}
	return out
}

func isType(ty string, v any) bool {
	switch ty {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

func within(kw string, n, limit float64) bool {
	if strings.HasPrefix(kw, "min") {
		return n >= limit
	}
	return n <= limit
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
