package kiosk

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxReasonLen is the most characters (code points) of a reject
// reason: the wire limit of a Result's detail, api.MaxDetailLen in
// api/validate.go. The kiosk imports the standard library only, so the
// number is repeated here; a daemon test holds the two equal.
const DefaultMaxReasonLen = 1024

// normalizeReason turns what the official typed into the detail of the
// rejection's Result, or refuses it with a catalogue code. Line breaks are
// kept: CRLF and CR become LF. A TAB becomes a space. The text is trimmed,
// then at most max characters are allowed. It refuses what the wire format
// refuses in a detail (api/validate.go): invalid UTF-8, control characters
// other than LF, format characters (Unicode category Cf, among them the
// bidirectional controls and the zero-width joiner), the line and paragraph
// separators U+2028 and U+2029, and the tag block U+E0000–U+E007F.
func normalizeReason(s string, max int) (string, error) {
	if !utf8.ValidString(s) {
		return "", &requestError{code: CodeReasonInvalid, msg: "reason is not valid UTF-8"}
	}
	if strings.ContainsAny(s, "\r\t") {
		s = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\t", " ").Replace(s)
	}
	for i, r := range s {
		if !reasonRune(r) {
			return "", &requestError{code: CodeReasonInvalid, msg: fmt.Sprintf("reason holds %U at byte %d", r, i)}
		}
	}
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n > max {
		return "", &requestError{code: CodeReasonTooLong, params: map[string]string{"n": strconv.Itoa(max)},
			msg: fmt.Sprintf("reason has %d characters, limit %d", n, max)}
	}
	return s, nil
}

// reasonRune reports whether r may stand in a reason, after CR and TAB are
// replaced.
func reasonRune(r rune) bool {
	switch {
	case r == '\n':
		return true
	case unicode.IsControl(r),
		unicode.Is(unicode.Cf, r),
		unicode.Is(unicode.Bidi_Control, r),
		r == '\u2028', r == '\u2029',
		0xE0000 <= r && r <= 0xE007F:
		return false
	}
	return true
}
