package api

import (
	"encoding/json"
	"strings"
)

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
// the type does not have are not looked into.//
// It reads the bytes itself, without encoding/json's tokenizer (which
// allocates for every token and was a tenth of a terminal's cost per
// message), and it keeps the literal of the top-level "v" when that is a
// number, so decodeJSON need not parse the text once more to find it.
// FuzzCheckKeys holds it to the answers of a walker on encoding/json's
// tokenizer.
func checkKeys(raw []byte, strict bool, s *shape) (out, version []byte, memberErr, err error) {
	w := walker{raw: raw, strict: strict}
	if w.peek() != '{' {
		return nil, nil, nil, refuse(ReasonMalformed, "want a JSON object")
	}
	if err := w.object(1, s, ""); err != nil {
		return nil, nil, nil, err
	}
	return w.raw, w.version, w.memberErr, nil
}

const maxDepth = 16

type walker struct {
	raw       []byte
	pos       int // the next byte of raw to read
	strict    bool
	patched   bool   // raw is a copy of the caller's
	memberErr error  // the first refusal found against the shape
	number    []byte // the last number read
	version   []byte // the top-level "v", when a number
}

// later keeps the first refusal found against the shape.
func (w *walker) later(err error) {
	if w.memberErr == nil {
		w.memberErr = err
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (w *walker) peek() byte {
	for ; w.pos < len(w.raw); w.pos++ {
		switch c := w.raw[w.pos]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// syntax refuses the byte at pos, where want was expected.
func (w *walker) syntax(want string) error {
	if w.pos >= len(w.raw) {
		return refuse(ReasonMalformed, "unexpected end of JSON input, want %s", want)
	}
	return refuse(ReasonMalformed, "invalid character %q at offset %d, want %s", w.raw[w.pos], w.pos, want)
}

// object walks the members of an object of shape s (nil: not known) named
// name, pos at its '{'.
func (w *walker) object(depth int, s *shape, name string) error {
	if depth > maxDepth {
		return refuse(ReasonMalformed, "nested deeper than %d", maxDepth)
	}
	w.pos++
	var seen map[string]bool
	if w.peek() == '}' {
		w.pos++
	} else {
		seen = map[string]bool{}
		for {
			if w.peek() != '"' {
				return w.syntax("an object key")
			}
			start, end, escaped, err := w.string()
			if err != nil {
				return err
			}
			key, err := w.text(start, end, escaped)
			if err != nil {
				return err
			}
			if key != strings.ToLower(key) {
				return refuse(ReasonMalformed, "key %q: keys are lower case", truncate(key))
			}
			if seen[key] {
				return refuse(ReasonMalformed, "duplicate key %q", truncate(key))
			}
			seen[key] = true
			if w.peek() != ':' {
				return w.syntax("':'")
			}
			w.pos++
			m, known := s.child(key)
			w.number = nil
			if err := w.value(key, depth, m.shape, valuePath{name, key, 0}, known && !m.required); err != nil {
				return err
			}
			if depth == 1 && key == "v" {
				w.version = w.number
			}
			c := w.peek()
			if c == '}' {
				w.pos++
				break
			}
			if c != ',' {
				return w.syntax("',' or '}'")
			}
			w.pos++
		}
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
	switch c := w.peek(); {
	case c == 'n':
		if err := w.literal("null"); err != nil {
			return err
		}
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
	case c == 't':
		return w.literal("true")
	case c == 'f':
		return w.literal("false")
	case c == '-' || ('0' <= c && c <= '9'):
		return w.readNumber()
	case c == '"':
		start, end, escaped, err := w.string()
		if err != nil {
			return err
		}
		switch s.kindOr(shapeScalar) {
		case shapeBytes:
			// A raw line break cannot stand in a JSON string: only an
			// escaped one can.
			if !escaped {
				return nil
			}
			v, err := w.text(start, end, escaped)
			if err != nil {
				return err
			}
			if strings.ContainsAny(v, "\r\n") {
				return refuse(ReasonMalformed, "%s: base64 with line breaks (MIME): want one line of standard base64 (RFC 4648 §4)", p)
			}
		case shapeTime:
			v, err := w.text(start, end, escaped)
			if err != nil {
				return err
			}
			if err := checkTimeSyntax(p.String(), v); err != nil {
				w.later(err)
				return nil
			}
			if !escaped {
				w.upperTime(start, end)
			}
		}
		return nil
	case c == '{':
		if s.kindOr(shapeScalar) != shapeObject {
			return w.object(depth+1, nil, "") // not known, or refused by the decoder
		}
		return w.object(depth+1, s, p.String())
	case c == '[':
		if depth+1 > maxDepth {
			return refuse(ReasonMalformed, "nested deeper than %d", maxDepth)
		}
		w.pos++
		elem, name := s.element(), ""
		if elem != nil {
			name = p.String()
		}
		if w.peek() == ']' {
			w.pos++
			return nil
		}
		for i := 0; ; i++ {
			if err := w.value(key, depth+1, elem, valuePath{name, "", i}, false); err != nil {
				return err
			}
			c := w.peek()
			if c == ']' {
				w.pos++
				return nil
			}
			if c != ',' {
				return w.syntax("',' or ']'")
			}
			w.pos++
		}
	}
	return w.syntax("a value")
}

// literal reads the word lit (true, false or null) at pos.
func (w *walker) literal(lit string) error {
	if string(w.raw[w.pos:min(len(w.raw), w.pos+len(lit))]) != lit {
		return w.syntax(lit)
	}
	w.pos += len(lit)
	return nil
}

// readNumber reads a number at pos, as RFC 8259 §6 writes one.
func (w *walker) readNumber() error {
	start := w.pos
	digits := func() bool {
		from := w.pos
		for w.pos < len(w.raw) && '0' <= w.raw[w.pos] && w.raw[w.pos] <= '9' {
			w.pos++
		}
		return w.pos > from
	}
	if w.raw[w.pos] == '-' {
		w.pos++
	}
	switch {
	case w.pos < len(w.raw) && w.raw[w.pos] == '0':
		w.pos++
	case !digits():
		return w.syntax("a digit")
	}
	if w.pos < len(w.raw) && w.raw[w.pos] == '.' {
		w.pos++
		if !digits() {
			return w.syntax("a digit")
		}
	}
	if w.pos < len(w.raw) && (w.raw[w.pos] == 'e' || w.raw[w.pos] == 'E') {
		w.pos++
		if w.pos < len(w.raw) && (w.raw[w.pos] == '+' || w.raw[w.pos] == '-') {
			w.pos++
		}
		if !digits() {
			return w.syntax("a digit")
		}
	}
	w.number = w.raw[start:w.pos]
	return nil
}

// string reads a string at pos and returns where its contents stand in
// raw, and whether they hold an escape.
func (w *walker) string() (start, end int, escaped bool, err error) {
	start = w.pos + 1
	for i := start; i < len(w.raw); i++ {
		switch c := w.raw[i]; {
		case c == '"':
			w.pos = i + 1
			return start, i, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(w.raw) {
				w.pos = i
				return 0, 0, false, w.syntax("an escape")
			}
			switch w.raw[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := unicodeEscape(w.raw[i:]); !ok {
					w.pos = i
					return 0, 0, false, w.syntax("four hex digits after \\u")
				}
				i += 4
			default:
				w.pos = i
				return 0, 0, false, w.syntax("an escape")
			}
		case c < 0x20:
			w.pos = i
			return 0, 0, false, w.syntax("a character of a string (control characters are escaped)")
		}
	}
	w.pos = len(w.raw)
	return 0, 0, false, w.syntax("the end of a string")
}

// text returns the string whose contents stand at raw[start:end].
func (w *walker) text(start, end int, escaped bool) (string, error) {
	if !escaped {
		return string(w.raw[start:end]), nil
	}
	var s string
	if err := json.Unmarshal(w.raw[start-1:end+1], &s); err != nil {
		return "", refuse(ReasonMalformed, "%v", err)
	}
	return s, nil
}

// upperTime upper-cases the "t" between date and time and a final "z" of
// the time string at raw[start:end], written without escapes.
func (w *walker) upperTime(start, end int) {
	s := w.raw[start:end]
	if len(s) < 20 || (s[10] != 't' && s[len(s)-1] != 'z') {
		return
	}
	if !w.patched {
		w.raw, w.patched = append([]byte(nil), w.raw...), true
	}
	if s[10] == 't' {
		w.raw[start+10] = 'T'
	}
	if s[len(s)-1] == 'z' {
		w.raw[end-1] = 'Z'
	}
}
