package api

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text rules.
//
// Every free-text field of v1 is valid UTF-8 and contains none of these
// characters:
//
//   - control characters, general category Cc: U+0000–U+001F, U+007F–U+009F;
//   - format characters, general category Cf: U+00AD soft hyphen, U+200B zero
//     width space, U+200C/U+200D zero width (non-)joiner, U+200E/U+200F and
//     U+061C directional marks, the bidi embeddings, overrides and isolates
//     (U+202A–U+202E, U+2066–U+2069), U+2060 word joiner, U+FEFF, U+FFF9–U+FFFB
//     and the rest of the category;
//   - line and paragraph separators, categories Zl and Zp: U+2028, U+2029;
//   - the whole tag block U+E0000–U+E007F, assigned or not.
//
// They draw nothing, or draw differently from what the bytes say, so a
// sender could make the kiosk show an official something other than what the
// message holds, or make two different messages look the same.
//
// Text shown to officials (the "text" fields: a Job's title, number, sender,
// signer name and NIP, field labels and values, document names) is one line.
// Text that terminals and the central system write for people who read logs
// and audit trails (the "detail" fields: Receipt.Detail, Result.Detail,
// SignedDocument.TimestampError, Status.LastError, Cancel.Reason) may also
// contain line feeds, U+000A, so that a reason typed on several lines
// survives; a carriage return is never allowed, line breaks on the wire are a
// bare LF. Status.Version follows the text rules.
//
// The categories come from the unicode package's tables, Unicode 15.0.0 in
// the Go release this is built with (unicode.Version). A Go release with a
// newer Unicode version may move characters into or out of Cf; the JSON
// Schemas spell the same set out as ranges, and TestUnicodeVersionPinned and
// TestSchemaTextPatterns fail until the schemas are regenerated for it.
const textUnicodeVersion = "15.0.0"

// tagBlock is the Unicode tag block; U+E0000 and U+E0002–U+E001F are
// unassigned, the rest is Cf, and no tag character is ever meant to show.
var tagBlock = &unicode.RangeTable{R32: []unicode.Range32{{Lo: 0xE0000, Hi: 0xE007F, Stride: 1}}}

// textProblem names what r is when a text field may not contain it, and
// returns "" when it may. detail allows the line feed of the detail fields.
func textProblem(r rune, detail bool) string {
	switch {
	case r == '\n' && detail:
		return ""
	case r == '\r' && detail:
		return "carriage return (line breaks are a bare LF)"
	case r == '\n':
		return "line feed (text is one line)"
	case unicode.IsControl(r):
		return "control character"
	case unicode.Is(unicode.Zl, r):
		return "line separator"
	case unicode.Is(unicode.Zp, r):
		return "paragraph separator"
	case unicode.Is(unicode.Bidi_Control, r): // all of them are Cf too
		return "bidi control character"
	case unicode.Is(unicode.Cf, r), unicode.Is(tagBlock, r):
		return "invisible character"
	}
	return ""
}

// checkText checks a one-line text field (see Text rules): required, at most
// max characters, valid UTF-8, no refused character.
func checkText(field, s string, required bool, max int) error {
	return checkString(field, s, required, max, false)
}

// checkDetail checks a detail field: the text rules, with line feeds allowed.
func checkDetail(field, s string, max int) error {
	return checkString(field, s, false, max, true)
}

func checkString(field, s string, required bool, max int, detail bool) error {
	if s == "" {
		if required {
			return refuse(ReasonMalformed, "%s is required", field)
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return refuse(ReasonMalformed, "%s is not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return refuse(ReasonMalformed, "%s has %d characters, limit %d", field, n, max)
	}
	for _, r := range s {
		if p := textProblem(r, detail); p != "" {
			return refuse(ReasonMalformed, "%s contains %s %U", field, p, r)
		}
	}
	return nil
}

// fits reports whether s passes checkString as an optional field.
func fits(s string, max int, detail bool) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if textProblem(r, detail) != "" {
			return false
		}
	}
	return true
}

// SanitizeDetail makes text that Teken builds from untrusted bytes — a PDF
// parser's error naming a filter, a timestamp authority's answer, a reason an
// official typed — fit any detail field (Result.Detail, Receipt.Detail,
// SignedDocument.TimestampError, Status.LastError, Cancel.Reason):
//
//   - CRLF and a lone CR become LF;
//   - every other character the detail fields refuse becomes a visible escape
//     in Go's spelling: \t, \r, \n, \u00ad, \U000e0041, and a byte that is not
//     UTF-8 becomes \xff;
//   - the result is cut at a character boundary to MaxDetailLen characters,
//     the last of them "…", when longer; an escape is never cut in half.
//
// Text that already fits is returned unchanged, so SanitizeDetail is
// idempotent. Escapes rather than U+FFFD keep the evidence readable: a log
// says "/Fl\u0001ateDecode" and not "/Fl�ateDecode". They are for people and
// are not reversible: a backslash of the input stays as it is.
func SanitizeDetail(s string) string {
	return sanitize(s, MaxDetailLen, true)
}

// SanitizeText is SanitizeDetail for one-line text shown to officials (a
// document name taken from a file name, say): line breaks, normalised to LF,
// become \n as well, and the result has at most max characters. It returns ""
// when max < 1. An empty result stays empty: a required field needs the
// caller's fallback.
func SanitizeText(s string, max int) string {
	return sanitize(s, max, false)
}

const ellipsis = "…"

func sanitize(s string, max int, detail bool) string {
	if max < 1 {
		return ""
	}
	if fits(s, max, detail) {
		return s
	}
	var b strings.Builder
	n := 0    // characters in b
	keep := 0 // bytes of b that leave room for the ellipsis
	add := func(piece string, chars int) bool {
		if n+chars > max {
			return false
		}
		b.WriteString(piece)
		n += chars
		if n <= max-1 {
			keep = b.Len()
		}
		return true
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece, chars := s[i:i+size], 1
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
			chars = len(piece)
		case r == '\r':
			if strings.HasPrefix(s[i+1:], "\n") {
				size++
			}
			r, piece = '\n', "\n"
		}
		if chars == 1 && textProblem(r, detail) != "" {
			piece = escapeRune(r)
			chars = len(piece)
		}
		if !add(piece, chars) {
			return b.String()[:keep] + ellipsis
		}
		i += size
	}
	return b.String()
}

// escapeRune spells a refused character the way Go's %q does.
func escapeRune(r rune) string {
	switch r {
	case '\t':
		return `\t`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	}
	if r > 0xFFFF {
		return fmt.Sprintf(`\U%08x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}
