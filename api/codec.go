package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Message is any v1 message: it can check its own fields.
type Message interface {
	Validate() error
}

var (
	_ Message = (*Job)(nil)
	_ Message = (*Cancel)(nil)
	_ Message = (*ResultAck)(nil)
	_ Message = (*ResultAcks)(nil)
	_ Message = (*Receipt)(nil)
	_ Message = (*Result)(nil)
	_ Message = (*Status)(nil)
	_ Message = (*Sync)(nil)
)

// Encode validates m and returns its JSON. Receipt, Result, Status and Sync
// travel as this JSON; Job, Cancel, ResultAck, ResultAcks and SyncRequest
// travel signed (see Signer).
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	if s, ok := m.(*Sync); ok {
		// An empty list goes out as [] rather than null: the schema wants arrays.
		c := *s
		if c.JobsWaiting == nil {
			c.JobsWaiting = []string{}
		}
		if c.ResultsUndelivered == nil {
			c.ResultsUndelivered = []string{}
		}
		m = &c
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// DecodeReceipt parses and validates a Receipt from the wire.
func DecodeReceipt(raw []byte) (*Receipt, error) {
	return decodeAs[Receipt](raw, MaxMessageBytes, false)
}

// DecodeResult parses and validates a Result from the wire.
func DecodeResult(raw []byte) (*Result, error) {
	return decodeAs[Result](raw, MaxResultBytes, false)
}

// DecodeStatus parses and validates a Status from the wire.
func DecodeStatus(raw []byte) (*Status, error) {
	return decodeAs[Status](raw, MaxMessageBytes, false)
}

// DecodeSync parses and validates a Sync from the wire.
func DecodeSync(raw []byte) (*Sync, error) {
	return decodeAs[Sync](raw, MaxMessageBytes, false)
}

// decodeAs decodes into a new T and returns nil with the refusal on error.
func decodeAs[T any, P interface {
	*T
	Message
}](raw []byte, limit int, strict bool) (*T, error) {
	m := new(T)
	if err := decode(raw, limit, strict, P(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// decode is the one path from untrusted JSON to a message: size first, then
// the key check, then "v" (so a future version is named as such rather than
// as malformed), then what the key check found against the Go type, then
// the Unicode check, then the fields, then Validate. Unknown fields are
// refused when strict (signed payloads: a terminal never ignores an
// instruction) and ignored otherwise (messages from terminals, which may be
// newer).
func decode(raw []byte, limit int, strict bool, m Message) error {
	if err := decodeJSON(raw, limit, strict, m); err != nil {
		return err
	}
	return m.Validate()
}

// decodeJSON is decode without Validate, for callers that check some fields
// first.
func decodeJSON(raw []byte, limit int, strict bool, m any) error {
	if len(raw) > limit {
		return refuse(ReasonTooLarge, "%d bytes, limit %d", len(raw), limit)
	}
	raw, memberErr, err := checkKeys(raw, strict, shapeOf(m))
	if err != nil {
		return err
	}
	var probe struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	if probe.V == nil {
		return refuse(ReasonMalformed, "v is required")
	}
	if err := checkVersion(*probe.V); err != nil {
		return err
	}
	if memberErr != nil {
		return memberErr
	}
	if err := checkUnicode(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(m); err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return refuse(ReasonMalformed, "data after the JSON object")
	}
	return nil
}

// checkKeys refuses a JSON text whose top level is not an object, or any
// object in which two keys are equal ignoring case, or a key with upper-case
// letters. encoding/json matches keys case-insensitively and keeps the last
// duplicate, while other parsers keep the first or match exactly; refusing
// both cases means every parser reads the same message.
//
// On the same pass it refuses what the schemas refuse and encoding/json
// would quietly take: a line break inside a base64 member (MIME base64,
// which Go's decoder skips) and, in a strict (signed) message, a null
// value (which Go reads as "absent"). It returns raw with the lower-case
// "t" and "z" of RFC 3339 times upper-cased (RFC 3339 §5.6 allows them;
// Go's parser does not), copying raw only when there is one.
//
// Guided by s, the shape of the Go type the text decodes into, it also
// finds, in every message, a null for a member or element the type has, a
// member without omitempty that is absent, and a time that is not RFC 3339
// (time.Parse takes "+24:00" and "T1:00:00Z"): encoding/json would read
// the first two as zero values. It returns the first of these as
// memberErr rather than err, for decodeJSON to report once "v" is known
// to be 1: a message of another version may be shaped otherwise. Members
// the type does not have are not looked into.
func checkKeys(raw []byte, strict bool, s *shape) (out []byte, memberErr, err error) {
	w := walker{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw, strict: strict}
	w.dec.UseNumber()
	tok, err := w.dec.Token()
	if err != nil {
		return nil, nil, refuse(ReasonMalformed, "%v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, refuse(ReasonMalformed, "want a JSON object")
	}
	if err := w.object(1, s, ""); err != nil {
		return nil, nil, err
	}
	return w.raw, w.memberErr, nil
}

const maxDepth = 16

type walker struct {
	dec       *json.Decoder
	raw       []byte
	strict    bool
	patched   bool  // raw is a copy of the caller's
	memberErr error // the first refusal found against the shape
}

// later keeps the first refusal found against the shape.
func (w *walker) later(err error) {
	if w.memberErr == nil {
		w.memberErr = err
	}
}

// object walks the members of an object of shape s (nil: not known) named
// name, its '{' read.
func (w *walker) object(depth int, s *shape, name string) error {
	if depth > maxDepth {
		return refuse(ReasonMalformed, "nested deeper than %d", maxDepth)
	}
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return refuse(ReasonMalformed, "%v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return refuse(ReasonMalformed, "want an object key")
		}
		if key != strings.ToLower(key) {
			return refuse(ReasonMalformed, "key %q: keys are lower case", truncate(key))
		}
		if seen[key] {
			return refuse(ReasonMalformed, "duplicate key %q", truncate(key))
		}
		seen[key] = true
		m, known := s.child(key)
		if err := w.value(key, depth, m.shape, valuePath{name, key, 0}, known && !m.required); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil { // the closing '}'
		return refuse(ReasonMalformed, "%v", err)
	}
	if s != nil {
		for _, key := range s.required {
			if !seen[key] {
				w.later(refuse(ReasonMalformed, "%s is required", valuePath{name, key, 0}))
				break
			}
		}
	}
	return nil
}

// value walks the value of member key (or of an array element of key) at
// p, of shape s (nil: not known); optional says s is a member with
// omitempty.
func (w *walker) value(key string, depth int, s *shape, p valuePath, optional bool) error {
	tok, err := w.dec.Token()
	if err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	switch v := tok.(type) {
	case nil:
		switch {
		case w.strict && s != nil && p.key == "":
			return refuse(ReasonMalformed, "%s is null: an element needs a value", p)
		case w.strict:
			return refuse(ReasonMalformed, "%s is null: leave a member out instead", truncate(key))
		case s != nil && optional:
			w.later(refuse(ReasonMalformed, "%s is null: leave the member out instead", p))
		case s != nil:
			w.later(refuse(ReasonMalformed, "%s is null: it needs a value", p))
		}
		return nil
	case string:
		switch s.kindOr(shapeScalar) {
		case shapeBytes:
			if strings.ContainsAny(v, "\r\n") {
				return refuse(ReasonMalformed, "%s: base64 with line breaks (MIME): want one line of standard base64 (RFC 4648 §4)", p)
			}
		case shapeTime:
			if err := checkTimeSyntax(p.String(), v); err != nil {
				w.later(err)
				return nil
			}
			w.upperTime(v)
		}
		return nil
	case json.Delim:
		switch v {
		case '{':
			if s.kindOr(shapeScalar) != shapeObject {
				return w.object(depth+1, nil, "") // not known, or refused by the decoder
			}
			return w.object(depth+1, s, p.String())
		case '[':
			if depth+1 > maxDepth {
				return refuse(ReasonMalformed, "nested deeper than %d", maxDepth)
			}
			elem, name := s.element(), ""
			if elem != nil {
				name = p.String()
			}
			for i := 0; w.dec.More(); i++ {
				if err := w.value(key, depth+1, elem, valuePath{name, "", i}, false); err != nil {
					return err
				}
			}
			if _, err := w.dec.Token(); err != nil { // the closing ']'
				return refuse(ReasonMalformed, "%v", err)
			}
			return nil
		}
		return refuse(ReasonMalformed, "unexpected %v", v)
	}
	return nil
}

// upperTime upper-cases the "t" between date and time and a final "z" of
// the time string s the decoder has just read, where they stand in raw. A
// string written with escapes is left alone: its bytes are not s.
func (w *walker) upperTime(s string) {
	if len(s) < 20 || (s[10] != 't' && s[len(s)-1] != 'z') {
		return
	}
	end := int(w.dec.InputOffset()) - 1 // the closing quote
	start := end - len(s)
	if start < 1 || end >= len(w.raw) || w.raw[end] != '"' || w.raw[start-1] != '"' || string(w.raw[start:end]) != s {
		return
	}
	if !w.patched {
		w.raw, w.patched = bytes.Clone(w.raw), true
	}
	if s[10] == 't' {
		w.raw[start+10] = 'T'
	}
	if s[len(s)-1] == 'z' {
		w.raw[end-1] = 'Z'
	}
}

// checkUnicode refuses a JSON text that is not valid UTF-8, or that escapes
// one half of a surrogate pair without the other ("\ud800"). encoding/json
// would quietly turn either into U+FFFD, so the text checks would pass on
// something other than what was sent, and a parser in another language would
// read yet another string (Python keeps the lone surrogate). A backslash
// occurs only inside strings in the JSON text that checkKeys has parsed, so
// the escapes can be found without tracking strings.
func checkUnicode(raw []byte) error {
	if !utf8.Valid(raw) {
		return refuse(ReasonMalformed, "not valid UTF-8")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // raw[i] is the escaped character: u, or one skipped with the backslash
		v, ok := unicodeEscape(raw[i:])
		if !ok || v < 0xD800 || v > 0xDFFF {
			continue
		}
		if v < 0xDC00 && len(raw) > i+5 && raw[i+5] == '\\' {
			if w, ok := unicodeEscape(raw[i+6:]); ok && w >= 0xDC00 && w <= 0xDFFF {
				i += 10 // past the second escape's last digit
				continue
			}
		}
		return refuse(ReasonMalformed, "a string escapes half a surrogate pair, \\u%04x", v)
	}
	return nil
}

// unicodeEscape reads the uXXXX of a \uXXXX escape at the start of b.
func unicodeEscape(b []byte) (rune, bool) {
	if len(b) < 5 || b[0] != 'u' {
		return 0, false
	}
	var v rune
	for _, c := range b[1:5] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
