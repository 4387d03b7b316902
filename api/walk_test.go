package api

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzCheckKeys holds the byte walker to the answers of the walker on
// encoding/json's tokenizer, for every shape of message a terminal or the
// central side decodes: the same texts refused, the same found against the
// shape, the same times upper-cased. Texts that are not UTF-8 are left
// out: there the tokenizer reads U+FFFD where the walker keeps the bytes,
// and checkUnicode refuses them after either.
func FuzzCheckKeys(f *testing.F) {
	names := []string{"job", "cancel", "result-ack", "result-acks", "receipt-stored",
		"result-signed", "status-online", "sync", "sync-request"}
	for _, n := range names {
		for _, strict := range []bool{false, true} {
			for shape := range uint8(len(walkShapes)) {
				f.Add(readGolden(f, n), strict, shape)
			}
		}
	}
	for _, s := range []string{`{"v":1}`, `{"v":1,"v":2}`, `{"V":1}`, `{"v":1.0}`, `{"v":-0}`, `{"v":"1"}`, `{"v":null}`,
		`{"a":[1,2,{"b":null}],"c":"\u0041\n"}`, `{"completed_at":"2026-01-05t02:31:00z"}`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`,
		`{"a":tru}`, `{"a":"\x"}`, `{"a":1e}`, `{"a":-}`, ` {"a":1} x`, `{"a":"\ud83d\ude00"}`, `[]`, `"x"`, ``} {
		f.Add([]byte(s), true, uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, strict bool, which uint8) {
		if !utf8.Valid(data) {
			return
		}
		s := walkShapes[int(which)%len(walkShapes)]
		out, version, memberErr, err := checkKeys(data, strict, s)
		refOut, refMemberErr, refErr := checkKeysReference(data, strict, s)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: walker says %v, tokenizer says %v", data, err, refErr)
		}
		if err != nil {
			if Reason(err) != ReasonMalformed {
				t.Fatalf("%q: refused as %q: %v", data, Reason(err), err)
			}
			return
		}
		if !bytes.Equal(out, refOut) {
			t.Fatalf("%q: walker returns %q, tokenizer %q", data, out, refOut)
		}
		if errText(memberErr) != errText(refMemberErr) {
			t.Fatalf("%q: walker found %v, tokenizer %v", data, memberErr, refMemberErr)
		}
		if version != nil && !bytes.Contains(data, version) {
			t.Fatalf("%q: version %q is not in the text", data, version)
		}
	})
}

// walkShapes are the shapes FuzzCheckKeys walks texts against; nil is a
// text of unknown shape.
var walkShapes = []*shape{nil, shapeOf(&Job{}), shapeOf(&Result{}), shapeOf(&ResultAcks{}), shapeOf(&Sync{}),
	shapeOf(&Receipt{}), shapeOf(&Status{}), shapeOf(&Cancel{})}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckKeysVersion(t *testing.T) {
	for text, want := range map[string]string{
		`{"v":1,"a":2}`:        "1",
		`{"a":{"v":3},"v":12}`: "12",
		`{"a":{"v":3}}`:        "",
		`{"v":"1"}`:            "",
		`{"v":-1.5e3}`:         "-1.5e3",
	} {
		_, version, _, err := checkKeys([]byte(text), false, nil)
		if err != nil || string(version) != want {
			t.Errorf("%s: version %q, %v; want %q", text, version, err, want)
		}
	}
}
