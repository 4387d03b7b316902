package api

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

// textField is one free-text field of the wire contract: where it is in
// which message and schema, the name Go's refusals give it, and its rules.
type textField struct {
	schema string   // schema name
	path   []string // keys from the schema's root to the property
	name   string   // the field as refusals name it
	limit  int      // characters
	detail bool     // detail rules (line feeds allowed) rather than text rules
	set    func(string) Message
}

// textFields lists every free-text field. TestSchemaTextPatterns checks that
// the schemas have no other.
func textFields() []textField {
	job := func(f func(*Job, string)) func(string) Message {
		return func(s string) Message { j := sampleJob(); f(j, s); return j }
	}
	return []textField{
		{"job", []string{"properties", "title"}, "title", MaxTextLen, false, job(func(j *Job, s string) { j.Title = s })},
		{"job", []string{"properties", "number"}, "number", MaxTextLen, false, job(func(j *Job, s string) { j.Number = s })},
		{"job", []string{"properties", "sender"}, "sender", MaxTextLen, false, job(func(j *Job, s string) { j.Sender = s })},
		{"job", []string{"$defs", "signatory", "properties", "nip"}, "signer.nip", MaxTextLen, false, job(func(j *Job, s string) { j.Signer.NIP = s })},
		{"job", []string{"$defs", "signatory", "properties", "name"}, "signer.name", MaxTextLen, false, job(func(j *Job, s string) { j.Signer.Name = s })},
		{"job", []string{"$defs", "field", "properties", "label"}, "fields[0].label", MaxTextLen, false, job(func(j *Job, s string) { j.Fields[0].Label = s })},
		{"job", []string{"$defs", "field", "properties", "value"}, "fields[0].value", MaxTextLen, false, job(func(j *Job, s string) { j.Fields[0].Value = s })},
		{"job", []string{"$defs", "document", "properties", "name"}, "documents[0].name", MaxTextLen, false, job(func(j *Job, s string) { j.Documents[0].Name = s })},
		{"job", []string{"$defs", "signatory", "properties", "jabatan"}, "signer.jabatan", MaxTextLen, false, job(func(j *Job, s string) {
			j.V, j.Signer.Jabatan = VersionMarks, s
		})},
		{"job", []string{"$defs", "visible", "properties", "initials"}, "documents[0].visible.initials", maxInitialsLen, false, job(func(j *Job, s string) {
			j.V = VersionMarks
			padesDocument(j).Visible = &Visible{Mark: MarkParaf, Initials: s}
		})},
		{"job", []string{"$defs", "anchor", "properties", "text"}, "documents[0].visible.anchor.text", maxAnchorLen, false, job(func(j *Job, s string) {
			j.V = VersionMarks
			padesDocument(j).Visible = &Visible{Anchor: &Anchor{Text: s}}
		})},
		{"status", []string{"properties", "version"}, "version", MaxVersionLen, false, func(s string) Message {
			return &Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: s, Since: t0}
		}},
		{"status", []string{"properties", "last_error"}, "last_error", MaxDetailLen, true, func(s string) Message {
			return &Status{V: Version, Terminal: sampleTerminal, State: StateOffline, Version: "1.0.0", LastError: s, Since: t0}
		}},
		{"cancel", []string{"properties", "reason"}, "reason", MaxDetailLen, true, func(s string) Message {
			c := sampleCancel()
			c.Reason = s
			return c
		}},
		{"receipt", []string{"properties", "detail"}, "detail", MaxDetailLen, true, func(s string) Message {
			return &Receipt{V: Version, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: ReasonMalformed, Detail: s, At: t0}
		}},
		{"result", []string{"properties", "detail"}, "detail", MaxDetailLen, true, func(s string) Message {
			return &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeRejected, Reason: ReasonRejectedBySigner, Detail: s, CompletedAt: t0.Add(time.Hour)}
		}},
		{"result", []string{"$defs", "signed_document", "properties", "timestamp_error"}, "documents[0].timestamp_error", MaxDetailLen, true, func(s string) Message {
			r := sampleSignedResult()
			r.Documents[0].Format, r.Documents[0].Level, r.Documents[0].TimestampError = FormatPAdES, LevelBB, s
			return r
		}},
		{"result", []string{"$defs", "signed_document", "properties", "level_error"}, "documents[0].level_error", MaxDetailLen, true, func(s string) Message {
			r := sampleSignedResult()
			r.Documents[0].Format, r.Documents[0].Level, r.Documents[0].LevelError = FormatPAdES, LevelBT, s
			return r
		}},
	}
}

// textChar is a character (or a short string) put into every text field.
// json, when set, is how the character is escaped in the JSON text instead:
// some strings (a lone surrogate) exist only there.
type textChar struct {
	name   string
	s      string
	json   string
	text   bool // accepted by the text rules
	detail bool // accepted by the detail rules
}

var textChars = []textChar{
	{name: "ascii", s: "Surat", text: true, detail: true},
	{name: "indonesian", s: "Perihal: “Undangan rapat” — Senin, 09.00 WITA", text: true, detail: true},
	{name: "e acute", s: "é", text: true, detail: true},
	{name: "e combining acute", s: "e\u0301", text: true, detail: true},
	{name: "cjk", s: "漢字", text: true, detail: true},
	{name: "arabic", s: "بسم الله", text: true, detail: true},
	{name: "javanese", s: "ꦲꦏ꧀ꦱꦫ", text: true, detail: true},
	{name: "emoji", s: "😀", text: true, detail: true},
	{name: "emoji skin tone", s: "👍🏽", text: true, detail: true},
	{name: "emoji flag", s: "🇮🇩", text: true, detail: true},
	{name: "emoji variation selector", s: "✔\ufe0f", text: true, detail: true},
	{name: "space", s: " ", text: true, detail: true},
	{name: "no-break space", s: "\u00a0", text: true, detail: true},
	{name: "narrow no-break space", s: "\u202f", text: true, detail: true},
	{name: "ideographic space", s: "\u3000", text: true, detail: true},
	{name: "replacement character", s: "\ufffd", text: true, detail: true},
	{name: "object replacement", s: "\ufffc", text: true, detail: true},
	{name: "ellipsis", s: "…", text: true, detail: true},
	{name: "backslash escape text", s: `\u200b`, text: true, detail: true},
	{name: "private use", s: "\ue000", text: true, detail: true},
	{name: "BMP last", s: "\uffff", text: true, detail: true},
	{name: "astral first", s: "\U00010000", text: true, detail: true},
	{name: "astral last", s: "\U0010ffff", text: true, detail: true},
	{name: "variation selector supplement", s: "\U000e0100", text: true, detail: true},
	{name: "after the tag block", s: "\U000e0080", text: true, detail: true},
	{name: "before the tag block", s: "\U000dffff", text: true, detail: true},
	{name: "LF", s: "\n", detail: true},
	{name: "two lines", s: "baris satu\nbaris dua", detail: true},
	{name: "CR", s: "\r"},
	{name: "CRLF", s: "\r\n"},
	{name: "TAB", s: "\t"},
	{name: "NUL", s: "\x00"},
	{name: "ESC", s: "\x1b[2J"},
	{name: "DEL", s: "\x7f"},
	{name: "NEL", s: "\u0085"},
	{name: "C1 last", s: "\u009f"},
	{name: "soft hyphen", s: "\u00ad"},
	{name: "arabic number sign", s: "\u0600"},
	{name: "arabic letter mark", s: "\u061c"},
	{name: "arabic end of ayah", s: "\u06dd"},
	{name: "syriac abbreviation mark", s: "\u070f"},
	{name: "mongolian vowel separator", s: "\u180e"},
	{name: "zero width space", s: "\u200b"},
	{name: "zero width non-joiner", s: "\u200c"},
	{name: "zero width joiner", s: "\u200d"},
	{name: "emoji zwj sequence", s: "👩\u200d💻"},
	{name: "left-to-right mark", s: "\u200e"},
	{name: "right-to-left mark", s: "\u200f"},
	{name: "left-to-right embedding", s: "\u202a"},
	{name: "right-to-left override", s: "\u202e"},
	{name: "word joiner", s: "\u2060"},
	{name: "invisible plus", s: "\u2064"},
	{name: "left-to-right isolate", s: "\u2066"},
	{name: "pop directional isolate", s: "\u2069"},
	{name: "nominal digit shapes", s: "\u206f"},
	{name: "byte order mark", s: "\ufeff"},
	{name: "interlinear annotation anchor", s: "\ufff9"},
	{name: "interlinear annotation terminator", s: "\ufffb"},
	{name: "line separator", s: "\u2028"},
	{name: "paragraph separator", s: "\u2029"},
	{name: "kaithi number sign", s: "\U000110bd"},
	{name: "egyptian hieroglyph joiner", s: "\U00013430"},
	{name: "shorthand format letter overlap", s: "\U0001bca0"},
	{name: "musical symbol begin beam", s: "\U0001d173"},
	{name: "tag block first, unassigned", s: "\U000e0000"},
	{name: "language tag", s: "\U000e0001"},
	{name: "tag unassigned", s: "\U000e0002"},
	{name: "tag space", s: "\U000e0020"},
	{name: "tag latin A", s: "\U000e0041"},
	{name: "cancel tag", s: "\U000e007f"},
	{name: "tag sequence flag", s: "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"},
	{name: "escaped NUL", json: `\u0000`},
	{name: "escaped LF", json: `\n`, detail: true},
	{name: "escaped zero width space", json: `\u200B`},
	{name: "escaped line separator", json: `\u2028`},
	{name: "escaped emoji pair", json: `\ud83d\ude00`, text: true, detail: true},
	{name: "escaped tag pair", json: `\uDB40\uDC41`},
	{name: "escaped lone high surrogate", json: `\ud800`},
	{name: "escaped lone low surrogate", json: `\udc00`},
	{name: "escaped reversed pair", json: `\ude00\ud83d`},
	{name: "escaped high then BMP escape", json: `\ud83d\u0041`},
	{name: "escaped backslash then u", json: `\\ud800`, text: true, detail: true},
}

// TestTextRules checks every text field against the table of characters, in
// the middle and at the end of the value, and that a refusal names the field
// and the character.
func TestTextRules(t *testing.T) {
	for _, f := range textFields() {
		for _, c := range textChars {
			if c.s == "" {
				continue // escapes only: TestSchemaTextCharacters decodes them
			}
			want := c.text
			if f.detail {
				want = c.detail
			}
			for _, v := range []string{"x" + c.s + "y", "x" + c.s} {
				err := f.set(v).Validate()
				if (err == nil) != want {
					t.Errorf("%s %q (%s): Validate = %v, want ok=%v", f.name, v, c.name, err, want)
				}
				if err != nil && (Reason(err) != ReasonMalformed || !strings.Contains(err.Error(), f.name+" contains ")) {
					t.Errorf("%s %q (%s): refusal %v does not name the field", f.name, v, c.name, err)
				}
			}
		}
	}
}

func TestTextRefusalNamesCharacter(t *testing.T) {
	for _, c := range []struct {
		msg  Message
		want string
	}{
		{func() Message { j := sampleJob(); j.Title = "Undangan\u200brapat"; return j }(), "title contains invisible character U+200B"},
		{func() Message { j := sampleJob(); j.Fields[0].Value = "\u00adSegera"; return j }(), "fields[0].value contains invisible character U+00AD"},
		{func() Message { j := sampleJob(); j.Documents[1].Name = "a\U000e0041.pdf"; return j }(), "documents[1].name contains invisible character U+E0041"},
		{func() Message { j := sampleJob(); j.Sender = "Setda \u202eatadS"; return j }(), "sender contains bidi control character U+202E"},
		{func() Message { j := sampleJob(); j.Signer.Name = "La Ode\u2028Budiman"; return j }(), "signer.name contains line separator U+2028"},
		{func() Message { j := sampleJob(); j.Number = "005\n123"; return j }(), "number contains line feed (text is one line) U+000A"},
		{func() Message { j := sampleJob(); j.Title = "a\tb"; return j }(), "title contains control character U+0009"},
		{&Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeRejected, Reason: ReasonRejectedBySigner, Detail: "baris\r\ndua", CompletedAt: t0}, "detail contains carriage return (line breaks are a bare LF) U+000D"},
		{&Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: "1.0", LastError: "x\u2029", Since: t0}, "last_error contains paragraph separator U+2029"},
	} {
		err := c.msg.Validate()
		if err == nil || !strings.HasSuffix(err.Error(), ": "+c.want) {
			t.Errorf("Validate = %v, want %q", err, c.want)
		}
	}
}

// TestUnicodeVersionPinned fails when Go's Unicode tables change: the schemas
// spell out the refused characters of one Unicode version, so a new one
// means regenerating them (see TestSchemaTextPatterns), reviewing what moved,
// and then updating textUnicodeVersion and docs/PROTOCOL.md.
func TestUnicodeVersionPinned(t *testing.T) {
	if unicode.Version != textUnicodeVersion {
		t.Fatalf("Go's unicode tables are Unicode %s, the text rules and schemas were made for %s", unicode.Version, textUnicodeVersion)
	}
}

// TestBidiControlsAreFormat confirms that naming Bidi_Control separately in
// textProblem refuses nothing that Cf does not: it only names them better.
func TestBidiControlsAreFormat(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.Is(unicode.Bidi_Control, r) && !unicode.Is(unicode.Cf, r) {
			t.Errorf("%U is a bidi control outside Cf", r)
		}
	}
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("é", MaxDetailLen)
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"clean", "nomor surat salah", "nomor surat salah"},
		{"clean with lines", "baris satu\nbaris dua", "baris satu\nbaris dua"},
		{"CRLF", "baris satu\r\nbaris dua\r\n", "baris satu\nbaris dua\n"},
		{"lone CR", "a\rb\r", "a\nb\n"},
		{"CR CR LF", "a\r\r\nb", "a\n\nb"},
		{"control in a filter name", "unsupported filter /Fl\x01ateDecode", `unsupported filter /Fl\u0001ateDecode`},
		{"tab", "a\tb", `a\tb`},
		{"invalid UTF-8", "obj 12: \xff\xfe name", `obj 12: \xff\xfe name`},
		{"truncated UTF-8", "caf\xc3", `caf\xc3`},
		{"replacement character kept", "caf\ufffd", "caf\ufffd"},
		{"zero width space", "a\u200bb", `a\u200bb`},
		{"bidi override", "\u202eFDP.exe", `\u202eFDP.exe`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"tag", "a\U000e0041", `a\U000e0041`},
		{"backslash kept", `C:\temp\u0001`, `C:\temp\u0001`},
		{"at the limit", long, long},
		{"one over the limit", long + "x", long[:len(long)-len("é")] + "…"},
		{"escape at the cut", strings.Repeat("a", MaxDetailLen-3) + "\x01", strings.Repeat("a", MaxDetailLen-3) + "…"},
		{"escape grows past the limit", strings.Repeat("a", MaxDetailLen-6) + "\x01", strings.Repeat("a", MaxDetailLen-6) + `\u0001`},
		{"escape one too long", strings.Repeat("a", MaxDetailLen-5) + "\x01", strings.Repeat("a", MaxDetailLen-5) + "…"},
		{"CRLF counts once", strings.Repeat("a", MaxDetailLen-1) + "\r\n", strings.Repeat("a", MaxDetailLen-1) + "\n"},
		{"huge", strings.Repeat("\x00", 1<<20), strings.Repeat(`\u0000`, (MaxDetailLen-1)/6) + "…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := SanitizeDetail(c.in)
			if got != c.want {
				t.Errorf("SanitizeDetail(%.60q…) = %.80q…, want %.80q…", c.in, got, c.want)
			}
			if err := checkDetail("detail", got, MaxDetailLen); err != nil {
				t.Error(err)
			}
		})
	}
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"Surat\r\nKeputusan", MaxTextLen, `Surat\nKeputusan`},
		{"a\nb", MaxTextLen, `a\nb`},
		{"undangan\u200b.pdf", MaxTextLen, `undangan\u200b.pdf`},
		{"abcdef", 4, "abc…"},
		{"abcd", 4, "abcd"},
		{"ab\x01", 4, "ab…"},
		{"a", 1, "a"},
		{"ab", 1, "…"},
		{"\x01", 1, "…"},
		{"a", 0, ""},
		{"a", -1, ""},
	} {
		got := SanitizeText(c.in, c.max)
		if got != c.want {
			t.Errorf("SanitizeText(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if got != "" {
			if err := checkText("text", got, true, c.max); err != nil {
				t.Errorf("SanitizeText(%q, %d): %v", c.in, c.max, err)
			}
		}
	}
}

// FuzzSanitizeDetail checks that whatever the input, SanitizeDetail's output
// fits every detail field, that sanitising again changes nothing, and that
// input that already fits passes unchanged; and the same of SanitizeText for
// a few limits.
func FuzzSanitizeDetail(f *testing.F) {
	for _, c := range textChars {
		f.Add("x" + c.s + "y")
	}
	f.Add(strings.Repeat("a", MaxDetailLen-1) + "\xff")
	var details []textField
	for _, f := range textFields() {
		if f.detail {
			details = append(details, f)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := SanitizeDetail(s)
		r := &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeFailed, Reason: ReasonBadDocument, Detail: out, CompletedAt: t0}
		if err := r.Validate(); err != nil {
			t.Fatalf("SanitizeDetail(%q) = %q: %v", s, out, err)
		}
		for _, f := range details {
			if err := f.set(out).Validate(); err != nil {
				t.Fatalf("SanitizeDetail(%q) = %q as %s: %v", s, out, f.name, err)
			}
		}
		if again := SanitizeDetail(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
		if checkDetail("detail", s, MaxDetailLen) == nil && out != s {
			t.Fatalf("valid detail %q changed to %q", s, out)
		}
		if s != "" && out == "" {
			t.Fatalf("SanitizeDetail(%q) is empty", s)
		}
		for _, max := range []int{1, 2, 7, MaxVersionLen, MaxTextLen} {
			out := SanitizeText(s, max)
			if out == "" {
				if s != "" {
					t.Fatalf("SanitizeText(%q, %d) is empty", s, max)
				}
				continue
			}
			if err := checkText("text", out, true, max); err != nil {
				t.Fatalf("SanitizeText(%q, %d) = %q: %v", s, max, out, err)
			}
			if again := SanitizeText(out, max); again != out {
				t.Fatalf("SanitizeText(%d) not idempotent: %q -> %q -> %q", max, s, out, again)
			}
			if n := utf8.RuneCountInString(out); n > max {
				t.Fatalf("SanitizeText(%q, %d) has %d characters", s, max, n)
			}
		}
	})
}

// TestWireUnicode checks that the decoders refuse what encoding/json would
// silently turn into U+FFFD, and accept the escapes that are proper text.
func TestWireUnicode(t *testing.T) {
	base := mustEncode(&Receipt{V: Version, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: ReasonMalformed, Detail: "@", At: t0})
	for _, c := range []struct {
		name, detail string
		ok           bool
	}{
		{"plain", "ok", true},
		{"escaped pair", `\ud83d\ude00`, true},
		{"escaped pair upper case", `\uD83D\uDE00`, true},
		{"escaped backslash before u", `\\ud800`, true},
		{"escaped backslashes", `\\\\`, true},
		{"lone high", `\ud800`, false},
		{"lone high at the end", `a\udbff`, false},
		{"lone low", `\udfff`, false},
		{"high then high", `\ud800\ud800`, false},
		{"high then other escape", `\ud800\n`, false},
		{"escaped backslash then lone high", `\\\ud800`, false},
		{"invalid UTF-8", "\xff", false},
		{"encoded surrogate", "\xed\xa0\x80", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := strings.Replace(base, `"detail":"@"`, `"detail":"`+c.detail+`"`, 1)
			_, err := DecodeReceipt([]byte(raw))
			if (err == nil) != c.ok {
				t.Errorf("DecodeReceipt(%s) = %v, want ok=%v", raw, err, c.ok)
			}
		})
	}
	// A lone surrogate in a key is refused too, so no string anywhere
	// differs between parsers.
	raw := strings.Replace(base, `{"v":1,`, `{"v":1,"x\udc00":1,`, 1)
	if _, err := DecodeReceipt([]byte(raw)); err == nil {
		t.Errorf("DecodeReceipt(%s) accepted", raw)
	}
}

// TestRefusalDetailFits checks that a refusal quoting hostile input still
// fits a Receipt's detail, which is where intake puts it.
func TestRefusalDetailFits(t *testing.T) {
	r := refuse(ReasonMalformed, "filter %s", "/Fl\x01ate\u200bDecode\r\n"+strings.Repeat("x", 2*MaxDetailLen))
	if want := `filter /Fl\u0001ate\u200bDecode` + "\n" + "xxx"; !strings.HasPrefix(r.Detail, want) {
		t.Errorf("refusal detail %.60q…, want %q…", r.Detail, want)
	}
	j := mustEncode(sampleJob())
	raw := strings.Replace(j, `{"v":1,`, `{"v":1,"x\u0001\u200b\u2028":1,`, 1)
	env := signRaw(t, loadPrivate(t, "ed25519"), jose.EdDSA, kidOf(t, "ed25519"), TypeJob, []byte(raw))
	for _, err := range []error{r, func() error { _, _, err := testVerifier(t).VerifyJob(env); return err }()} {
		var re *RefusalError
		if !errors.As(err, &re) {
			t.Fatalf("%v is not a refusal", err)
		}
		rc := &Receipt{V: Version, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: re.Reason, Detail: re.Detail, At: t0}
		if err := rc.Validate(); err != nil {
			t.Errorf("refusal detail %q: %v", re.Detail, err)
		}
	}
}

// padesDocument makes the job's first document a pades one and returns
// it, for the fields only a visible block has.
func padesDocument(j *Job) *Document {
	pdf := []byte("%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
	d := NewDocument(j.Documents[0].ID, "surat.pdf", "application/pdf", pdf)
	d.Format = FormatPAdES
	j.Documents[0] = d
	return &j.Documents[0]
}
