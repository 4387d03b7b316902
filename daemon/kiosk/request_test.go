package kiosk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestParseSignRequest(t *testing.T) {
	for _, tc := range []struct {
		body    string
		ids     []string
		pin     string
		confirm bool
	}{
		{`{"job_ids":["j1"],"pin":"123456"}`, []string{"j1"}, "123456", false},
		{`{"pin":"Zq7Kx3Wv","job_ids":["a","b-c","d_e.f"],"confirm_last_attempt":true}`, []string{"a", "b-c", "d_e.f"}, "Zq7Kx3Wv", true},
		{" \r\n\t{ \"confirm_last_attempt\" : false , \"job_ids\" : [ \"j1\" , \"j2\" ] , \"pin\" : \"1234567\" } \n", []string{"j1", "j2"}, "1234567", false},
		{`{"job_ids":["\u006a1"],"pin":"abcdef"}`, []string{"j1"}, "abcdef", false},
	} {
		data := []byte(tc.body)
		req, err := parseSignRequest(data)
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if !slices.Equal(req.JobIDs, tc.ids) || string(req.PIN) != tc.pin || req.ConfirmLast != tc.confirm {
			t.Errorf("%s: got %q %q %v", tc.body, req.JobIDs, req.PIN, req.ConfirmLast)
		}
		if !within(req.PIN, data) {
			t.Errorf("%s: the PIN was copied out of the request buffer", tc.body)
		}
	}
}

// within reports whether b lies inside buf's memory: the parser took it
// without a copy.
func within(b, buf []byte) bool {
	if len(b) == 0 {
		return true
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(buf))
}

func TestNormalizeReason(t *testing.T) {
	for _, tc := range []struct {
		in, want, code string
	}{
		{"Tanggal salah", "Tanggal salah", ""},
		{"a\r\nb\rc\nd", "a\nb\nc\nd", ""},
		{"\n\n  a\tb  \n\n", "a b", ""},
		{"\u00a0a\u3000", "a", ""},   // other spaces are trimmed too
		{"a\u00a0b", "a\u00a0b", ""}, // and kept inside
		{"日本語 😀", "日本語 😀", ""},
		{"", "", ""},
		{"a\x00b", "", CodeReasonInvalid},
		{"a\x1bb", "", CodeReasonInvalid},
		{"a\x7fb", "", CodeReasonInvalid},
		{"a\u0085b", "", CodeReasonInvalid},
		{"a\u200db", "", CodeReasonInvalid}, // zero width joiner, Cf
		{"a\u2066b", "", CodeReasonInvalid}, // left-to-right isolate
		{"a\u061cb", "", CodeReasonInvalid}, // Arabic letter mark
		{"\u2028", "", CodeReasonInvalid},   // refused even where a trim would drop it
		{"a\u2029", "", CodeReasonInvalid},
		{"a\U000E0001b", "", CodeReasonInvalid},
		{"a\U000E007Fb", "", CodeReasonInvalid},
		{"a\U000E0100b", "a\U000E0100b", ""}, // a variation selector, past the tag block
		{"a\xffb", "", CodeReasonInvalid},
		{strings.Repeat("x", DefaultMaxReasonLen), strings.Repeat("x", DefaultMaxReasonLen), ""},
		{" " + strings.Repeat("é", DefaultMaxReasonLen) + "\r\n", strings.Repeat("é", DefaultMaxReasonLen), ""},
		{strings.Repeat("x", DefaultMaxReasonLen+1), "", CodeReasonTooLong},
		{strings.Repeat("\r\n", DefaultMaxReasonLen) + "x", "x", ""},
	} {
		got, err := normalizeReason(tc.in, DefaultMaxReasonLen)
		code := ""
		var re *requestError
		if errors.As(err, &re) {
			code = re.code
		} else if err != nil {
			t.Errorf("%q: error %v is not a requestError", tc.in, err)
		}
		if got != tc.want || code != tc.code {
			t.Errorf("%q: got %q %q, want %q %q", tc.in, got, code, tc.want, tc.code)
		}
	}
}

// FuzzSignRequest holds the hand-written parser to encoding/json: it never
// panics; what it accepts encoding/json accepts (strictly: no unknown
// member, nothing after the object) with the same values; the PIN it
// returns is exactly the bytes of the JSON string, inside the input; and
// every canonical request encoding/json would make of valid values it
// accepts. It may refuse more (a repeated member, a member name in another
// case, null, invalid UTF-8).
func FuzzSignRequest(f *testing.F) {
	for _, s := range []string{
		`{"job_ids":["j1"],"pin":"123456"}`,
		`{"pin":"Zq7Kx3Wv","job_ids":["a","b"],"confirm_last_attempt":true}`,
		`{"job_ids":["j1"],"pin":"12\u00334567"}`,
		`{"job_ids":["j1"],"pin":"123456","pin":"654321"}`,
		`{"job_ids":["j1"],"PIN":"123456"}`,
		`{"job_ids":["\u006a1"],"pin":"abcdef"}`,
		`{"job_ids":["j1","j1"],"pin":"123456"}`,
		`{"job_ids":[],"pin":"123456"}`,
		`{"job_ids":null,"pin":null}`,
		`{"job_ids":["j1"],"pin":"123456"} {}`,
		`{"job_ids":["j1"],"pin":"123456","confirm_last_attempt":1}`,
		"{\"job_ids\":[\"j\xff\"],\"pin\":\"123456\"}",
		`{"job_ids":["\ud800"],"pin":"123456"}`,
		` { "job_ids" : [ "j1" ] , "pin" : "12345678" } `,
		`[`, `{`, `{"`, `{"pin`, `{"pin":`, `{"pin":"`, `{"pin":"\`, `{"pin":"\u12`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		req, err := parseSignRequest(data)
		if !bytes.Equal(in, data) {
			t.Fatal("the parser changed its input")
		}
		var v struct {
			JobIDs      []string `json:"job_ids"`
			PIN         string   `json:"pin"`
			ConfirmLast bool     `json:"confirm_last_attempt"`
		}
		jerr := strictDecode(data, &v)

		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.code != CodeBadRequest && re.code != CodePINFormat) {
				t.Fatalf("error %v (%T) is not a 400 with a code", err, err)
			}
			if bytes.Contains([]byte(err.Error()), []byte(v.PIN)) && validPIN([]byte(v.PIN)) {
				t.Fatalf("error %q quotes the PIN", err)
			}
		} else {
			if jerr != nil {
				t.Fatalf("accepted what encoding/json refuses (%v): %q", jerr, data)
			}
			if string(req.PIN) != v.PIN || !within(req.PIN, data) {
				t.Fatalf("PIN %q, encoding/json says %q", req.PIN, v.PIN)
			}
			if !slices.Equal(req.JobIDs, v.JobIDs) || req.ConfirmLast != v.ConfirmLast {
				t.Fatalf("got %q %v, encoding/json says %q %v", req.JobIDs, req.ConfirmLast, v.JobIDs, v.ConfirmLast)
			}
			if !validPIN(req.PIN) || len(req.JobIDs) == 0 || len(req.JobIDs) > maxJobIDs {
				t.Fatalf("accepted PIN %q with %d jobs", req.PIN, len(req.JobIDs))
			}
			seen := map[string]bool{}
			for _, id := range req.JobIDs {
				if !validJobID(id) || seen[id] {
					t.Fatalf("accepted job id %q", id)
				}
				seen[id] = true
			}
		}

		// The canonical form of valid values must be accepted.
		if jerr != nil || !validPIN([]byte(v.PIN)) || len(v.JobIDs) == 0 || len(v.JobIDs) > maxJobIDs {
			return
		}
		seen := map[string]bool{}
		for _, id := range v.JobIDs {
			if !validJobID(id) || seen[id] {
				return
			}
			seen[id] = true
		}
		canon, _ := json.Marshal(v)
		req2, err := parseSignRequest(canon)
		if err != nil || string(req2.PIN) != v.PIN || !slices.Equal(req2.JobIDs, v.JobIDs) || req2.ConfirmLast != v.ConfirmLast {
			t.Fatalf("refused or misread the canonical %s: %v", canon, err)
		}
	})
}

// FuzzRejectRequest holds the reject parser and the reason's normalisation
// to encoding/json and to the rules of a Result's detail.
func FuzzRejectRequest(f *testing.F) {
	for _, s := range []string{
		`{"job_id":"j1","reason":"Tanggal salah"}`,
		`{"job_id":"j1","reason":"satu\r\ndua\rtiga\n\tempat"}`,
		`{"job_id":"j1","reason":"\ud83d\ude00 \u202e \u2028 \udb40\udc41"}`,
		`{"job_id":"j1","reason":"\ud800"}`,
		`{"job_id":"j1"}`,
		"{\"job_id\":\"j1\",\"reason\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseRejectRequest(data)
		var v struct {
			JobID  string `json:"job_id"`
			Reason string `json:"reason"`
		}
		jerr := strictDecode(data, &v)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.code != CodeBadRequest && re.code != CodeReasonInvalid) {
				t.Fatalf("error %v (%T) is not a 400 with a code", err, err)
			}
			return
		}
		if jerr != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", jerr, data)
		}
		if req.JobID != v.JobID || req.Reason != v.Reason {
			t.Fatalf("got %q %q, encoding/json says %q %q", req.JobID, req.Reason, v.JobID, v.Reason)
		}
		out, err := normalizeReason(req.Reason, DefaultMaxReasonLen)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.code != CodeReasonInvalid && re.code != CodeReasonTooLong) {
				t.Fatalf("reason error %v", err)
			}
			return
		}
		if !utf8.ValidString(out) || utf8.RuneCountInString(out) > DefaultMaxReasonLen || strings.TrimSpace(out) != out {
			t.Fatalf("normalised reason %q", out)
		}
		for _, r := range out {
			if r == '\r' || r == '\t' || !reasonRune(r) {
				t.Fatalf("normalised reason %q holds %U", out, r)
			}
		}
		if again, err := normalizeReason(out, DefaultMaxReasonLen); err != nil || again != out {
			t.Fatalf("normalising %q again gives %q, %v", out, again, err)
		}
	})
}

// strictDecode is encoding/json as strict as the kiosk: no unknown member,
// nothing but whitespace after the value.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the value")
	}
	return nil
}
