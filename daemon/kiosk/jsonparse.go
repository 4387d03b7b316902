package kiosk

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// parser is a reader of the small, flat JSON objects of the page's
// requests (RFC 8259). It never nests, so it needs no depth limit.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) errorf(format string, args ...any) *requestError {
	return badRequest("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// consume takes c after optional whitespace.
func (p *parser) consume(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// parseObject reads one JSON object filling all of b (whitespace aside),
// calling member for each key with the parser placed before its value;
// member must read the value.
func parseObject(b []byte, member func(p *parser, key []byte) error) error {
	p := &parser{b: b}
	if !p.consume('{') {
		return p.errorf("want an object")
	}
	if !p.consume('}') {
		for {
			p.ws()
			key, escaped, err := p.rawString()
			if err != nil {
				return err
			}
			if escaped {
				return p.errorf("escaped member name")
			}
			if !p.consume(':') {
				return p.errorf("want ':'")
			}
			p.ws()
			if err := member(p, key); err != nil {
				return err
			}
			if p.consume(',') {
				continue
			}
			if p.consume('}') {
				break
			}
			return p.errorf("want ',' or '}'")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("data after the object")
	}
	return nil
}

// rawString reads a JSON string and returns the bytes between its quotes,
// aliasing the input, and whether they hold an escape. It checks the
// string is well formed: no raw control character, only the escapes of
// RFC 8259 §7.
func (p *parser) rawString() (raw []byte, escaped bool, err error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false, p.errorf("want a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw = p.b[start:p.i]
			p.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if p.i+1 >= len(p.b) {
				return nil, false, p.errorf("unterminated escape")
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return nil, false, p.errorf("short \\u escape")
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if unhex(h) < 0 {
						return nil, false, p.errorf("bad \\u escape")
					}
				}
				p.i += 6
			default:
				return nil, false, p.errorf("bad escape")
			}
		case c < 0x20:
			return nil, false, p.errorf("control character in a string")
		default:
			p.i++
		}
	}
	return nil, false, p.errorf("unterminated string")
}

// str reads a JSON string and decodes it. Unlike encoding/json, which puts
// U+FFFD in their place, invalid UTF-8 and lone surrogate escapes are
// refused (requestError.unicode).
func (p *parser) str() (string, error) {
	raw, escaped, err := p.rawString()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(raw) {
		return "", badUnicode("string is not valid UTF-8")
	}
	if !escaped {
		return string(raw), nil
	}
	return unescape(raw)
}

// unescape decodes the inside of a well-formed JSON string.
func unescape(raw []byte) (string, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			switch {
			case 0xD800 <= r && r < 0xDC00:
				// A high surrogate must be followed by an escaped low one.
				if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return "", badUnicode("lone surrogate escape")
				}
				lo := hex4(raw[i+2 : i+6])
				if lo < 0xDC00 || lo > 0xDFFF {
					return "", badUnicode("lone surrogate escape")
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			case 0xDC00 <= r && r < 0xE000:
				return "", badUnicode("lone surrogate escape")
			}
			out = utf8.AppendRune(out, r)
			continue
		}
		i += 2
	}
	return string(out), nil
}

func hex4(b []byte) rune {
	var r rune
	for _, h := range b[:4] {
		r = r<<4 | rune(unhex(h))
	}
	return r
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// boolean reads true or false.
func (p *parser) boolean() (bool, error) {
	for _, lit := range []string{"true", "false"} {
		if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return lit == "true", nil
		}
	}
	return false, p.errorf("want true or false")
}

// jobIDs reads an array of 1 to maxJobIDs distinct valid job ids.
func (p *parser) jobIDs() ([]string, error) {
	if !p.consume('[') {
		return nil, p.errorf("want an array")
	}
	var ids []string
	if p.consume(']') {
		return ids, nil
	}
	seen := make(map[string]bool)
	for {
		p.ws()
		id, err := p.str()
		if err != nil {
			return nil, err
		}
		if !validJobID(id) {
			return nil, p.errorf("job id %d is not a job id", len(ids))
		}
		if seen[id] {
			return nil, p.errorf("job id %d repeated", len(ids))
		}
		if len(ids) == maxJobIDs {
			return nil, p.errorf("more than %d job ids", maxJobIDs)
		}
		seen[id] = true
		ids = append(ids, id)
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			return ids, nil
		}
		return nil, p.errorf("want ',' or ']'")
	}
}

// parseIndex reads a document index of the document URL: decimal digits
// only, without a sign or leading zeros, below maxIndex.
func parseIndex(s string) (int, bool) {
	const maxIndex = 1 << 16
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= maxIndex {
		return 0, false
	}
	return n, true
}
