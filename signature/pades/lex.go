package pades

import (
	"bytes"
	"fmt"
	"strconv"
)

// The object model of ISO 32000-1 §7.3. A value is one of: nil (null),
// bool, int64, float64, name, pdfString, array, dict, ref, *stream.
type (
	name      string
	pdfString []byte
	array     []any
	dict      map[name]any
	ref       struct{ num, gen int }
	stream    struct {
		dict dict
		data []byte // still encoded
	}
)

// maxDepth bounds nesting of arrays and dictionaries so hostile input
// cannot exhaust the stack.
const maxDepth = 64

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// isWhite and isDelim follow ISO 32000-1 §7.2.2, tables 1 and 2.
func isWhite(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

// lexer reads PDF tokens from b starting at pos. With a budget, it
// charges what it builds (Limits.MaxParsedBytes) before building it.
type lexer struct {
	b   []byte
	pos int
	bud *budget // nil: not counted
}

// charge counts n bytes against the budget. Over budget, the lexer moves
// to the end of its data, so that every loop reading it ends, and the
// error stays in the budget for open to report.
func (l *lexer) charge(n int) error {
	if l.bud == nil {
		return nil
	}
	if err := l.bud.parse(n); err != nil {
		l.pos = len(l.b)
		return err
	}
	return nil
}

// skip passes white space and comments. What it passes is charged a
// byte a byte: it allocates nothing, but a file read many times over a
// long run of it would take time without bound.
func (l *lexer) skip() {
	start := l.pos
loop:
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		switch {
		case isWhite(c):
			l.pos++
		case c == '%':
			for l.pos < len(l.b) && l.b[l.pos] != '\n' && l.b[l.pos] != '\r' {
				l.pos++
			}
		default:
			break loop
		}
	}
	if l.pos > start {
		_ = l.charge(l.pos - start)
	}
}

// keyword reads a run of regular characters; over budget it reads none.
func (l *lexer) keyword() string {
	l.skip()
	start := l.pos
	for l.pos < len(l.b) && !isWhite(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
		l.pos++
	}
	if l.charge(costToken+l.pos-start) != nil {
		return ""
	}
	return string(l.b[start:l.pos])
}

// expect consumes the keyword kw or fails.
func (l *lexer) expect(kw string) error {
	at := l.pos
	if got := l.keyword(); got != kw {
		return malformed("expected %q at offset %d, found %q", kw, at, truncate(got))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// integer reads a non-negative decimal integer token.
func (l *lexer) integer() (int, bool) {
	save := l.pos
	kw := l.keyword()
	n, err := strconv.Atoi(kw)
	if err != nil || n < 0 || len(kw) > 12 {
		l.pos = save
		return 0, false
	}
	return n, true
}

// object reads one direct object, resolving "n g R" into a ref.
func (l *lexer) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, malformed("objects nested deeper than %d", maxDepth)
	}
	if err := l.charge(costValue); err != nil {
		return nil, err
	}
	l.skip()
	if l.pos >= len(l.b) {
		return nil, malformed("unexpected end of data")
	}
	switch c := l.b[l.pos]; c {
	case '/':
		return l.name()
	case '(':
		return l.literal()
	case '<':
		if l.pos+1 < len(l.b) && l.b[l.pos+1] == '<' {
			return l.dict(depth)
		}
		return l.hex()
	case '[':
		l.pos++
		var a array
		for {
			l.skip()
			if l.pos >= len(l.b) {
				return nil, malformed("unterminated array")
			}
			if l.b[l.pos] == ']' {
				l.pos++
				return a, nil
			}
			v, err := l.object(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case ')', '>', ']', '{', '}':
		return nil, malformed("unexpected %q at offset %d", c, l.pos)
	}
	at := l.pos
	kw := l.keyword()
	switch kw {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	case "":
		if l.bud != nil && l.bud.err != nil {
			return nil, l.bud.err
		}
		return nil, malformed("unexpected byte at offset %d", at)
	}
	if i, err := strconv.ParseInt(kw, 10, 64); err == nil {
		if i >= 0 && i <= 1<<31 {
			save := l.pos
			if gen, ok := l.integer(); ok && gen <= 65535 {
				if l.keyword() == "R" {
					if err := l.charge(costRef); err != nil {
						return nil, err
					}
					return ref{int(i), gen}, nil
				}
			}
			l.pos = save
		}
		return i, nil
	}
	if f, err := strconv.ParseFloat(kw, 64); err == nil && isNumeric(kw) {
		return f, nil
	}
	return nil, malformed("unknown token %q at offset %d", truncate(kw), at)
}

// isNumeric rejects what ParseFloat takes but PDF does not (Inf, NaN,
// exponents, hex).
func isNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && c != '.' && c != '-' && c != '+' {
			return false
		}
	}
	return true
}

// name reads a name (§7.3.5), decoding #xx escapes.
func (l *lexer) name() (name, error) {
	l.pos++ // '/'
	start, escaped := l.pos, false
	for l.pos < len(l.b) && !isWhite(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
		escaped = escaped || l.b[l.pos] == '#'
		l.pos++
	}
	raw := l.b[start:l.pos]
	if err := l.charge(costString + len(raw)); err != nil {
		return "", err
	}
	if !escaped {
		return name(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '#' && i+2 < len(raw) {
			if hi, lo := unhex(raw[i+1]), unhex(raw[i+2]); hi >= 0 && lo >= 0 {
				out = append(out, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		out = append(out, raw[i])
	}
	return name(out), nil
}

// unhex is the value of a hexadecimal digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func (l *lexer) literal() (pdfString, error) {
	l.pos++ // '('
	var out []byte
	nest := 0
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		l.pos++
		switch c {
		case '(':
			nest++
		case ')':
			if nest == 0 {
				// Counted once read: a string is no longer than the
				// data it is read from.
				if err := l.charge(costString + 2*len(out)); err != nil {
					return nil, err
				}
				return out, nil
			}
			nest--
		case '\\':
			if l.pos >= len(l.b) {
				return nil, malformed("unterminated string")
			}
			e := l.b[l.pos]
			l.pos++
			switch e {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case '\r':
				if l.pos < len(l.b) && l.b[l.pos] == '\n' {
					l.pos++
				}
				continue
			case '\n':
				continue
			default:
				if e >= '0' && e <= '7' {
					v := int(e - '0')
					for k := 0; k < 2 && l.pos < len(l.b) && l.b[l.pos] >= '0' && l.b[l.pos] <= '7'; k++ {
						v = v*8 + int(l.b[l.pos]-'0')
						l.pos++
					}
					c = byte(v)
				} else {
					c = e
				}
			}
		}
		out = append(out, c)
	}
	return nil, malformed("unterminated string")
}

func (l *lexer) hex() (pdfString, error) {
	l.pos++ // '<'
	end := bytes.IndexByte(l.b[l.pos:], '>')
	if end < 0 {
		return nil, malformed("unterminated hex string")
	}
	if err := l.charge(costString + end); err != nil {
		return nil, err
	}
	out := make([]byte, 0, end/2+1)
	var hi byte
	odd := false
	for _, c := range l.b[l.pos : l.pos+end] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case isWhite(c):
			continue
		default:
			return nil, malformed("bad hex string")
		}
		if odd {
			out = append(out, hi<<4|v)
		} else {
			hi = v
		}
		odd = !odd
	}
	if odd {
		out = append(out, hi<<4)
	}
	l.pos += end + 1
	return out, nil
}

func (l *lexer) dict(depth int) (dict, error) {
	l.pos += 2 // "<<"
	if err := l.charge(costDict); err != nil {
		return nil, err
	}
	d := dict{}
	for {
		l.skip()
		if l.pos+1 < len(l.b) && l.b[l.pos] == '>' && l.b[l.pos+1] == '>' {
			l.pos += 2
			return d, nil
		}
		if l.pos >= len(l.b) || l.b[l.pos] != '/' {
			return nil, malformed("dictionary key is not a name at offset %d", l.pos)
		}
		k, err := l.name()
		if err != nil {
			return nil, err
		}
		v, err := l.object(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, ok := d[k]; !ok {
			if err := l.charge(costEntry); err != nil {
				return nil, err
			}
		}
		d[k] = v
	}
}
