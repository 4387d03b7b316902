package api

import (
	"bytes"
	"encoding/json"
	"strings"
)

// checkKeysReference is checkKeys as first written, on encoding/json's
// tokenizer: FuzzCheckKeys holds the byte walker to the same answers.
func checkKeysReference(raw []byte, strict bool, s *shape) (out []byte, memberErr, err error) {
	w := refWalker{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw, strict: strict}
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

type refWalker struct {
	dec       *json.Decoder
	raw       []byte
	strict    bool
	patched   bool  // raw is a copy of the caller's
	memberErr error // the first refusal found against the shape
}

// later keeps the first refusal found against the shape.
func (w *refWalker) later(err error) {
	if w.memberErr == nil {
		w.memberErr = err
	}
}

// object walks the members of an object of shape s (nil: not known) named
// name, its '{' read.
func (w *refWalker) object(depth int, s *shape, name string) error {
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
func (w *refWalker) value(key string, depth int, s *shape, p valuePath, optional bool) error {
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
func (w *refWalker) upperTime(s string) {
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
