package api

import (
	"bytes"
	"os"
	"path/filepath"
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
