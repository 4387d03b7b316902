package api

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

type schemaNode = map[string]any

func loadSchema(t *testing.T, name string) schemaNode {
	t.Helper()
	b, err := Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	var s schemaNode
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	return s
}

// TestSchemaMatchesTypes keeps each schema equal to its Go type: the same
// properties, the same required set (every field without omitempty), the
// same JSON types, recursively through nested objects and arrays.
func TestSchemaMatchesTypes(t *testing.T) {
	types := map[string]any{
		"job": Job{}, "cancel": Cancel{}, "result-ack": ResultAck{}, "result-acks": ResultAcks{},
		"sync-request": SyncRequest{},
		"receipt":      Receipt{}, "result": Result{}, "status": Status{}, "sync": Sync{},
	}
	if got, want := SchemaNames(), slices.Sorted(mapsKeys(types)); !slices.Equal(got, want) {
		t.Fatalf("schemas %v, types %v", got, want)
	}
	for name, v := range types {
		t.Run(name, func(t *testing.T) {
			root := loadSchema(t, name)
			if root["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema %v", root["$schema"])
			}
			compareStruct(t, root, root, reflect.TypeOf(v), name)
		})
	}
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func resolve(t *testing.T, root, node schemaNode) schemaNode {
	t.Helper()
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		t.Fatalf("$ref %q is not local", ref)
	}
	def, ok := root["$defs"].(schemaNode)[name].(schemaNode)
	if !ok {
		t.Fatalf("$ref %q: no such $defs entry", ref)
	}
	return def
}

func compareStruct(t *testing.T, root, node schemaNode, typ reflect.Type, path string) {
	t.Helper()
	node = resolve(t, root, node)
	if node["type"] != "object" {
		t.Errorf("%s: schema type %v, want object", path, node["type"])
	}
	props, _ := node["properties"].(schemaNode)
	var required []string
	reqs, _ := node["required"].([]any) // absent when every field is optional
	for _, r := range reqs {
		required = append(required, r.(string))
	}
	var fields, wantRequired []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
		if !strings.Contains(opts, "omitempty") {
			wantRequired = append(wantRequired, name)
		}
		p, ok := props[name].(schemaNode)
		if !ok {
			t.Errorf("%s.%s: field missing from the schema", path, name)
			continue
		}
		compareType(t, root, p, f.Type, path+"."+name)
	}
	for name := range props {
		if !slices.Contains(fields, name) {
			t.Errorf("%s.%s: schema property without a Go field", path, name)
		}
	}
	slices.Sort(required)
	slices.Sort(wantRequired)
	if !slices.Equal(required, wantRequired) {
		t.Errorf("%s: schema requires %v, Go fields without omitempty are %v", path, required, wantRequired)
	}
}

var timeType = reflect.TypeOf(time.Time{})

func compareType(t *testing.T, root, p schemaNode, typ reflect.Type, path string) {
	t.Helper()
	p = resolve(t, root, p)
	want := ""
	switch {
	case typ == timeType:
		want = "string"
		if p["format"] != "date-time" {
			t.Errorf("%s: time without format date-time", path)
		}
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8:
		want = "string"
		if p["contentEncoding"] != "base64" {
			t.Errorf("%s: bytes without contentEncoding base64", path)
		}
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Int, typ.Kind() == reflect.Int64:
		want = "integer"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Pointer && typ.Elem().Kind() != reflect.Struct:
		compareType(t, root, p, typ.Elem(), path) // *bool: absent, or a boolean
		return
	case typ.Kind() == reflect.Pointer && typ.Elem().Kind() == reflect.Struct:
		compareStruct(t, root, p, typ.Elem(), path)
		return
	case typ.Kind() == reflect.Slice:
		want = "array"
		items, ok := p["items"].(schemaNode)
		if !ok {
			t.Errorf("%s: array without items", path)
			return
		}
		compareType(t, root, items, typ.Elem(), path+"[]")
	case typ.Kind() == reflect.Struct:
		compareStruct(t, root, p, typ, path)
		return
	default:
		t.Fatalf("%s: no schema mapping for %v", path, typ)
	}
	if p["const"] != nil || p["enum"] != nil {
		return // a const or enum of strings and numbers stands for the type
	}
	if p["type"] != want {
		t.Errorf("%s: schema type %v, Go %v wants %s", path, p["type"], typ, want)
	}
}

// validateScript validates each (schema, instance) pair named on stdin with
// Draft202012Validator and prints one verdict per line. Files are read as
// UTF-8 whatever the locale, and each schema is checked and compiled once.
const validateScript = `
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
validators = {}
for line in sys.stdin:
    schema_path, instance_path = line.split()
    v = validators.get(schema_path)
    if v is None:
        schema = json.load(open(schema_path, encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        v = validators[schema_path] = Draft202012Validator(schema, format_checker=FormatChecker())
    errors = list(v.iter_errors(json.load(open(instance_path, encoding="utf-8"))))
    print("invalid" if errors else "valid", instance_path, ascii(errors[0].message[:200]) if errors else "")
`

// debianPython returns the python3 that has Debian's python3-jsonschema,
// with Draft202012Validator.
func debianPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = testenv.LookPath(t, "python3")
	}
	if err := exec.Command(py, "-c", "from jsonschema import Draft202012Validator").Run(); err != nil {
		testenv.Unavailable(t, "%s has no jsonschema with Draft202012Validator (Debian package python3-jsonschema): %v", py, err)
	}
	return py
}

// TestSchemasValidateGolden checks, with an independent validator, that
// every golden message satisfies its schema and that broken messages do not.
func TestSchemasValidateGolden(t *testing.T) {
	py := debianPython(t)
	dir := t.TempDir()
	schemaPath := func(name string) string {
		p := filepath.Join(dir, name+".schema.json")
		if _, err := os.Stat(p); err != nil {
			b, _ := Schema(name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	var input strings.Builder
	want := map[string]string{}
	for _, g := range golden() {
		p, _ := filepath.Abs(filepath.Join("testdata", "golden", g.name+".json"))
		input.WriteString(schemaPath(g.schema) + " " + p + "\n")
		want[p] = "valid"
	}
	example, _ := filepath.Abs(filepath.Join("..", "examples", "job.json"))
	input.WriteString(schemaPath("job") + " " + example + "\n")
	want[example] = "valid"
	for _, bad := range invalidMessages() {
		p := filepath.Join(dir, "invalid-"+bad.name+".json")
		if err := os.WriteFile(p, []byte(bad.json), 0o644); err != nil {
			t.Fatal(err)
		}
		input.WriteString(schemaPath(bad.schema) + " " + p + "\n")
		want[p] = "invalid"
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
		if want[path] != verdict {
			t.Errorf("%s: %s (%s), want %s", filepath.Base(path), verdict, msg, want[path])
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("validator judged %d messages, want %d:\n%s", seen, len(want), out)
	}
}

// invalidMessages are wire messages that both the schema and the Go decoder
// must refuse.
func invalidMessages() []struct{ name, schema, json string } {
	return []struct{ name, schema, json string }{
		{"receipt-refused-without-reason", "receipt", `{"v":1,"terminal":"kendari-setda-01","envelope_sha256":"` + sampleCertHash + `","status":"refused","at":"2026-01-05T01:00:00Z"}`},
		{"receipt-bad-status", "receipt", `{"v":1,"terminal":"kendari-setda-01","job_id":"` + sampleJobID + `","envelope_sha256":"` + sampleCertHash + `","status":"maybe","at":"2026-01-05T01:00:00Z"}`},
		{"result-signed-without-cert", "result", `{"v":1,"job_id":"` + sampleJobID + `","terminal":"kendari-setda-01","outcome":"signed","documents":[{"id":"a","sha256":"` + sampleCertHash + `","format":"cms","signature":"MA==","signed_at":"2026-01-05T01:00:00Z"}],"completed_at":"2026-01-05T01:00:00Z"}`},
		{"result-rejected-without-reason", "result", `{"v":1,"job_id":"` + sampleJobID + `","terminal":"kendari-setda-01","outcome":"rejected","completed_at":"2026-01-05T01:00:00Z"}`},
		{"result-lower-case-ulid", "result", `{"v":1,"job_id":"01jgz8q4t5v6w7x8y9z0abcdef","terminal":"kendari-setda-01","outcome":"failed","reason":"internal","completed_at":"2026-01-05T01:00:00Z"}`},
		{"status-version-2", "status", `{"v":2,"terminal":"kendari-setda-01","state":"online","version":"1","token_present":true,"jobs_waiting":0,"results_undelivered":0,"since":"2026-01-05T01:00:00Z"}`},
		{"status-bad-terminal", "status", `{"v":1,"terminal":"Kendari_01","state":"online","version":"1","token_present":true,"jobs_waiting":0,"results_undelivered":0,"since":"2026-01-05T01:00:00Z"}`},
		{"status-negative-count", "status", `{"v":1,"terminal":"kendari-setda-01","state":"online","version":"1","token_present":false,"jobs_waiting":-1,"results_undelivered":0,"since":"2026-01-05T01:00:00Z"}`},
		{"sync-bad-time", "sync", `{"v":1,"terminal":"kendari-setda-01","at":"5 Jan 2026","jobs_waiting":[],"results_undelivered":[]}`},
		{"sync-bad-id", "sync", `{"v":1,"terminal":"kendari-setda-01","at":"2026-01-05T01:00:00Z","jobs_waiting":["job-1"],"results_undelivered":[]}`},
		{"result-acks-empty", "result-acks", `{"v":1,"terminal":"kendari-setda-01","job_ids":[],"issued_at":"2026-01-05T03:00:00Z","expires_at":"2026-01-06T03:00:00Z"}`},
		{"result-acks-twice", "result-acks", `{"v":1,"terminal":"kendari-setda-01","job_ids":["` + sampleJobID + `","` + sampleJobID + `"],"issued_at":"2026-01-05T03:00:00Z","expires_at":"2026-01-06T03:00:00Z"}`},
		{"result-acks-job-id", "result-acks", `{"v":1,"terminal":"kendari-setda-01","job_id":"` + sampleJobID + `","job_ids":["` + sampleJobID + `"],"issued_at":"2026-01-05T03:00:00Z","expires_at":"2026-01-06T03:00:00Z"}`},
		{"receipt-result-acks-duplicate", "receipt", `{"v":1,"terminal":"kendari-setda-01","for":"result_acks","job_id":"` + sampleJobID + `","envelope_sha256":"` + sampleCertHash + `","status":"duplicate","at":"2026-01-05T01:00:00Z"}`},
		{"cancel-unknown-field", "cancel", `{"v":1,"job_id":"` + sampleJobID + `","terminal":"kendari-setda-01","issued_at":"2026-01-05T01:00:00Z","expires_at":"2026-01-06T01:00:00Z","force":true}`},
		{"job-pades-text", "job", strings.Replace(mustEncode(sampleJob()), `"media_type":"text/plain",`, `"media_type":"text/plain","format":"pades",`, 1)},
		{"job-bad-base64", "job", strings.Replace(mustEncode(sampleJob()), `"content":"`, `"content":"*`, 1)},
		{"job-no-documents", "job", `{"v":1,"job_id":"` + sampleJobID + `","terminal":"kendari-setda-01","issued_at":"2026-01-05T01:00:00Z","expires_at":"2026-01-06T01:00:00Z","signer":{"cert_sha256":"` + sampleCertHash + `"},"title":"t","number":"n","sender":"s","documents":[]}`},
		{"job-control-char-title", "job", strings.Replace(mustEncode(sampleJob()), `"title":"`, `"title":"\u001b[2J`, 1)},
	}
}

func mustEncode(m Message) string {
	b, err := Encode(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestInvalidMessagesRefusedByGo checks that the Go side refuses what the
// schemas refuse.
func TestInvalidMessagesRefusedByGo(t *testing.T) {
	for _, bad := range invalidMessages() {
		t.Run(bad.name, func(t *testing.T) {
			var m Message
			strict := false
			switch bad.schema {
			case "job":
				m, strict = new(Job), true
			case "cancel":
				m, strict = new(Cancel), true
			case "result-acks":
				m, strict = new(ResultAcks), true
			case "receipt":
				m = new(Receipt)
			case "result":
				m = new(Result)
			case "status":
				m = new(Status)
			case "sync":
				m = new(Sync)
			}
			if err := decode([]byte(bad.json), MaxResultBytes, strict, m); err == nil {
				t.Errorf("accepted %s", bad.json)
			}
		})
	}
}
