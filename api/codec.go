package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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
	return decodeJSONVersions(raw, limit, strict, m, true)
}

// decodeJSONVersions is decodeJSON that takes a Job of v 2 only when
// marks is set.
func decodeJSONVersions(raw []byte, limit int, strict bool, m any, marks bool) error {
	if len(raw) > limit {
		return refuse(ReasonTooLarge, "%d bytes, limit %d", len(raw), limit)
	}
	raw, version, memberErr, err := checkKeys(raw, strict, shapeOf(m))
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(string(version), 10, 0)
	if err != nil {
		// Absent, not a number or not an integer: encoding/json says
		// which, as it would have for any other member.
		var probe struct {
			V *int `json:"v"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return refuse(ReasonMalformed, "%v", err)
		}
		if probe.V == nil {
			return refuse(ReasonMalformed, "v is required")
		}
		v = int64(*probe.V)
	}
	if _, job := m.(*Job); !job || !marks || v != VersionMarks {
		if err := checkVersion(int(v)); err != nil {
			return err
		}
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
