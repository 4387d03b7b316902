package api

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecoders(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"receipt": func(b []byte) error { _, err := DecodeReceipt(b); return err },
		"result":  func(b []byte) error { _, err := DecodeResult(b); return err },
		"status":  func(b []byte) error { _, err := DecodeStatus(b); return err },
		"sync":    func(b []byte) error { _, err := DecodeSync(b); return err },
	}
	golden := map[string][]byte{
		"receipt": readGolden(t, "receipt-refused"),
		"result":  readGolden(t, "result-signed"),
		"status":  readGolden(t, "status-online"),
		"sync":    readGolden(t, "sync"),
	}
	edit := func(b []byte, old, new string) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	for kind, dec := range decoders {
		g := golden[kind]
		cases := []struct {
			name string
			in   []byte
			want ReasonCode
		}{
			{"golden", g, ""},
			{"unknown field tolerated", edit(g, `{"v":1,`, `{"v":1,"uptime_seconds":12,"extra":{"a":[1,2]},`), ""},
			{"whitespace", append(append([]byte(" \n"), g...), '\n'), ""},
			{"version 2", edit(g, `{"v":1,`, `{"v":2,`), ReasonUnsupportedVersion},
			{"version 2 with a new shape", []byte(`{"v":2,"terminals":[]}`), ReasonUnsupportedVersion},
			{"no version", edit(g, `{"v":1,`, `{`), ReasonMalformed},
			{"version as string", edit(g, `{"v":1,`, `{"v":"1",`), ReasonMalformed},
			{"duplicate key", edit(g, `{"v":1,`, `{"v":1,"terminal":"baubau-setda-02",`), ReasonMalformed},
			{"key in upper case", edit(g, `"terminal"`, `"Terminal"`), ReasonMalformed},
			{"trailing object", append(bytes.Clone(g), `{}`...), ReasonMalformed},
			{"array", []byte(`[` + string(g) + `]`), ReasonMalformed},
			{"truncated", g[:len(g)/2], ReasonMalformed},
			{"deep nesting", edit(g, `{"v":1,`, `{"v":1,"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,`), ReasonMalformed},
			{"bad terminal", edit(g, `"kendari-setda-01"`, `"../../#"`), ReasonMalformed},
			{"too large", append(bytes.Repeat([]byte(" "), MaxResultBytes), g...), ReasonTooLarge},
			{"empty", nil, ReasonMalformed},
		}
		for _, c := range cases {
			t.Run(kind+"/"+c.name, func(t *testing.T) {
				err := dec(c.in)
				if got := Reason(err); got != c.want {
					t.Errorf("reason %q (%v), want %q", got, err, c.want)
				}
			})
		}
	}
}

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name string
		msg  Message
		ok   bool
	}{
		{"uuid job id", &ResultAck{V: 1, JobID: "0f8fad5b-d9cb-469f-a165-70867728950e", Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1)}, true},
		{"upper-case uuid", &ResultAck{V: 1, JobID: "0F8FAD5B-D9CB-469F-A165-70867728950E", Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1)}, false},
		{"ulid over 128 bits", &ResultAck{V: 1, JobID: "81JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1)}, false},
		{"ulid with I", &ResultAck{V: 1, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEI", Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1)}, false},
		{"zero window", &ResultAck{V: 1, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0}, false},
		{"result acks naming a job twice", &ResultAcks{V: 1, Terminal: sampleTerminal, JobIDs: []string{sampleJobID, sampleJobID}, IssuedAt: t0, ExpiresAt: t0.Add(1)}, false},
		{"result acks without ids", &ResultAcks{V: 1, Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1)}, false},
		{"no issued_at", &Cancel{V: 1, JobID: sampleJobID, Terminal: sampleTerminal, ExpiresAt: t0}, false},
		{"cancel reason with line feed", &Cancel{V: 1, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1), Reason: "a\nb"}, true},
		{"cancel reason with CRLF", &Cancel{V: 1, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: t0, ExpiresAt: t0.Add(1), Reason: "a\r\nb"}, false},
		{"receipt stored without job id", &Receipt{V: 1, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptStored, At: t0}, false},
		{"receipt stored with reason", &Receipt{V: 1, Terminal: sampleTerminal, JobID: sampleJobID, EnvelopeSHA256: sampleCertHash, Status: ReceiptStored, Reason: ReasonExpired, At: t0}, false},
		{"receipt future reason code", &Receipt{V: 1, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: "quota_exceeded", At: t0}, true},
		{"receipt reason with spaces", &Receipt{V: 1, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: "not ok", At: t0}, false},
		{"result signed with reason", func() Message { r := sampleSignedResult(); r.Reason = ReasonInternal; return r }(), false},
		{"result signed twice for one document", func() Message { r := sampleSignedResult(); r.Documents[1].ID = "surat"; return r }(), false},
		{"result failed with documents", func() Message {
			r := sampleSignedResult()
			r.Outcome, r.Reason = OutcomeFailed, ReasonTokenError
			return r
		}(), false},
		{"result empty signature", func() Message { r := sampleSignedResult(); r.Documents[0].Signature = nil; return r }(), false},
		{"status unknown state", &Status{V: 1, Terminal: sampleTerminal, State: "busy", Version: "1", Since: t0}, false},
		{"job duplicate document id", func() Message { j := sampleJob(); j.Documents[1].ID = "surat"; return j }(), false},
		{"job size disagrees", func() Message { j := sampleJob(); j.Documents[0].Size++; return j }(), false},
		{"job bidi override in sender", func() Message { j := sampleJob(); j.Sender = "Setda \u202eatadS"; return j }(), false},
		{"job title too long", func() Message { j := sampleJob(); j.Title = strings.Repeat("é", MaxTextLen+1); return j }(), false},
		{"job title at the limit", func() Message { j := sampleJob(); j.Title = strings.Repeat("é", MaxTextLen); return j }(), true},
		{"job invalid utf-8", func() Message { j := sampleJob(); j.Number = "\xff"; return j }(), false},
		{"job media type with parameters", func() Message { j := sampleJob(); j.Documents[0].MediaType = "text/plain; charset=utf-8"; return j }(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.msg.Validate()
			if (err == nil) != c.ok {
				t.Errorf("Validate = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	if _, err := Encode(&Status{V: 1}); err == nil {
		t.Error("Encode accepted an empty status")
	}
}

func TestSchemaLookup(t *testing.T) {
	if _, err := Schema("job"); err != nil {
		t.Error(err)
	}
	if _, err := Schema("../doc.go"); err == nil {
		t.Error("Schema read outside the schema directory")
	}
}

// BenchmarkDecodeResultLarge measures the central system's side of the
// largest Result the wire allows: one signed PDF at MaxSignedPDFLen and CMS
// signatures filling the rest, close to MaxResultBytes.
func BenchmarkDecodeResultLarge(b *testing.B) {
	r := sampleSignedResult()
	pdf := bytes.Repeat([]byte("%PDF-1.7 signed bytes "), MaxSignedPDFLen/22)
	r.Documents = []SignedDocument{{ID: "surat", SHA256: sampleCertHash, Format: FormatPAdES, Level: LevelBB, Signature: pdf, SignedAt: t0}}
	for i := 0; len(r.Documents) < MaxDocuments; i++ {
		r.Documents = append(r.Documents, SignedDocument{ID: fmt.Sprintf("lampiran-%d", i), SHA256: sampleCertHash, Format: FormatCMS, Signature: bytes.Repeat([]byte{0x30}, MaxSignatureLen/2), SignedAt: t0})
	}
	raw, err := Encode(r)
	if err != nil {
		b.Fatal(err)
	}
	if len(raw) > MaxResultBytes {
		b.Fatalf("%d bytes, over the limit", len(raw))
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeResult(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "message-bytes")
}

// TestDecodeMembers covers what checkKeys finds against the Go type: a
// null or a missing required member, in every message and at any depth,
// and a time that is not RFC 3339 — each named in the refusal, and each
// reported only once "v" is known to be 1.
func TestDecodeMembers(t *testing.T) {
	status := mustEncode(&Status{V: 1, Terminal: sampleTerminal, State: StateOnline, Version: "1.0.0", TokenPresent: true, JobsWaiting: 3, Since: t0})
	sync := mustEncode(&Sync{V: 1, Terminal: sampleTerminal, At: t0, JobsWaiting: []string{sampleJobID}})
	receipt := mustEncode(&Receipt{V: 1, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: ReasonMalformed, Detail: "x", At: t0})
	result := mustEncode(sampleSignedResult())
	job := mustEncode(sampleJob())
	decoders := map[string]func([]byte) error{
		"status":  func(b []byte) error { _, err := DecodeStatus(b); return err },
		"sync":    func(b []byte) error { _, err := DecodeSync(b); return err },
		"receipt": func(b []byte) error { _, err := DecodeReceipt(b); return err },
		"result":  func(b []byte) error { _, err := DecodeResult(b); return err },
		"job":     func(b []byte) error { return decode(b, MaxMessageBytes, true, new(Job)) },
	}
	edit := func(doc, old, new string) string {
		t.Helper()
		if !strings.Contains(doc, old) {
			t.Fatalf("%s not in %s", old, doc)
		}
		return strings.Replace(doc, old, new, 1)
	}
	cases := []struct {
		name, kind, doc string
		want            ReasonCode
		detail          string // part of the refusal's text
	}{
		{"status", "status", status, "", ""},
		{"token_present null", "status", edit(status, `"token_present":true`, `"token_present":null`), ReasonMalformed, "token_present is null: it needs a value"},
		{"token_present missing", "status", edit(status, `"token_present":true,`, ``), ReasonMalformed, "token_present is required"},
		{"results_undelivered missing", "status", edit(status, `"results_undelivered":0,`, ``), ReasonMalformed, "results_undelivered is required"},
		{"last_error null", "status", edit(status, `{"v":1,`, `{"v":1,"last_error":null,`), ReasonMalformed, "last_error is null: leave the member out instead"},
		{"null in v2", "status", edit(edit(status, `"token_present":true`, `"token_present":null`), `"v":1`, `"v":2`), ReasonUnsupportedVersion, ""},
		{"missing in v2", "status", `{"v":2,"terminal":"kendari-setda-01"}`, ReasonUnsupportedVersion, ""},
		{"unknown member null", "status", edit(status, `{"v":1,`, `{"v":1,"uptime":null,"probe":{"at":"gestern","since":null,"signature":"a\nb"},`), "", ""},
		{"lists missing", "sync", edit(sync, `"results_undelivered":[],`, ``), ReasonMalformed, "results_undelivered is required"},
		{"list null", "sync", edit(sync, `"jobs_waiting":["`+sampleJobID+`"]`, `"jobs_waiting":null`), ReasonMalformed, "jobs_waiting is null"},
		{"list element null", "sync", edit(sync, `["`+sampleJobID+`"]`, `["`+sampleJobID+`",null]`), ReasonMalformed, "jobs_waiting[1] is null"},
		{"session_present null", "sync", edit(sync, `{"v":1,`, `{"v":1,"session_present":null,`), ReasonMalformed, "session_present is null"},
		{"at lower case", "sync", edit(sync, `"2026-01-05T01:00:00.000Z"`, `"2026-01-05t01:00:00.000z"`), "", ""},
		{"at offset", "sync", edit(sync, `"2026-01-05T01:00:00.000Z"`, `"2026-01-05T09:00:00+08:00"`), "", ""},
		{"at offset 24", "sync", edit(sync, `"2026-01-05T01:00:00.000Z"`, `"2026-01-05T01:00:00+24:00"`), ReasonMalformed, `at "2026-01-05T01:00:00+24:00": want an RFC 3339 time`},
		{"at in v2", "sync", edit(edit(sync, `"2026-01-05T01:00:00.000Z"`, `"5 Jan 2026"`), `"v":1`, `"v":2`), ReasonUnsupportedVersion, ""},
		{"detail null", "receipt", edit(receipt, `"detail":"x"`, `"detail":null`), ReasonMalformed, "detail is null"},
		{"at missing", "receipt", edit(receipt, `,"at":"2026-01-05T01:00:00.000Z"`, ``), ReasonMalformed, "at is required"},
		{"documents null", "result", edit(result, `"documents":[`, `"documents":null,"x":[`), ReasonMalformed, "documents is null"},
		{"signed_at missing", "result", edit(result, `,"signed_at":"2026-01-05T02:30:00.000Z"`, ``), ReasonMalformed, "documents[0].signed_at is required"},
		{"signed_at one-digit hour", "result", edit(result, `"2026-01-05T02:30:00.000Z"`, `"2026-01-05T2:30:00.000Z"`), ReasonMalformed, "documents[0].signed_at"},
		{"signed_at comma fraction", "result", edit(result, `"2026-01-05T02:30:00.000Z"`, `"2026-01-05T02:30:00,000Z"`), ReasonMalformed, "e.g. 2026-01-05T01:00:00.000Z"},
		{"signed_at minute 60", "result", edit(result, `"2026-01-05T02:30:00.000Z"`, `"2026-01-05T02:30:00+07:60"`), ReasonMalformed, "documents[0].signed_at"},
		{"signature with line break", "result", edit(result, `"signature":"MIAGCQ=="`, `"signature":"MIAG\nCQ=="`), ReasonMalformed, "documents[0].signature: base64 with line breaks"},
		{"job", "job", job, "", ""},
		{"job year 1999", "job", edit(job, `"issued_at":"2026-`, `"issued_at":"1999-`), ReasonMalformed, "issued_at"},
		{"job leap second", "job", edit(job, `"issued_at":"2026-01-05T01:00:00.000Z"`, `"issued_at":"2026-01-05T01:00:60.000Z"`), ReasonMalformed, "issued_at"},
		{"job signer cert missing", "job", edit(job, `"cert_sha256":"`+sampleCertHash+`",`, ``), ReasonMalformed, "signer.cert_sha256 is required"},
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.name, func(t *testing.T) {
			err := decoders[c.kind]([]byte(c.doc))
			if got := Reason(err); got != c.want {
				t.Fatalf("reason %q (%v), want %q\n%s", got, err, c.want, c.doc)
			}
			if err != nil && !strings.Contains(err.Error(), c.detail) {
				t.Errorf("refusal %q does not say %q", err, c.detail)
			}
		})
	}
}

// TestShapesMatchSchemas checks that the members the decoder requires are
// the schemas' required members, at every depth: the rule is the same
// (every field without omitempty), and this keeps the two from drifting.
func TestShapesMatchSchemas(t *testing.T) {
	types := map[string]any{
		"job": new(Job), "cancel": new(Cancel), "result-ack": new(ResultAck), "result-acks": new(ResultAcks), "sync-request": new(SyncRequest),
		"receipt": new(Receipt), "result": new(Result), "status": new(Status), "sync": new(Sync),
	}
	for name, m := range types {
		root := loadSchema(t, name)
		var walk func(node schemaNode, s *shape, where string)
		walk = func(node schemaNode, s *shape, where string) {
			node = resolve(t, root, node)
			switch s.kind {
			case shapeArray:
				items, _ := node["items"].(schemaNode)
				walk(items, s.elem, where+"[]")
			case shapeObject:
				var want []string
				reqs, _ := node["required"].([]any)
				for _, r := range reqs {
					want = append(want, r.(string))
				}
				got := slices.Clone(s.required)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: decoder requires %v, schema %v", where, got, want)
				}
				props, _ := node["properties"].(schemaNode)
				for key, mem := range s.members {
					p, _ := props[key].(schemaNode)
					walk(p, mem.shape, where+"."+key)
				}
			}
		}
		walk(root, shapeOf(m), name)
	}
}
