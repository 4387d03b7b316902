package api

// The id forms of the schemas, read byte by byte: every message checks
// them, a ResultAcks up to a thousand times, and as regular expressions
// they were a twentieth of a drained result's cost. TestLexicalForms and
// FuzzLexicalForms hold each to the schema's expression.

// lexical is a form an identifier must have.
type lexical func(string) bool

// MatchString reports whether s has the form, as a regexp.Regexp would.
func (f lexical) MatchString(s string) bool { return f(s) }

var (
	ulidForm       lexical = isULID       // ^[0-7][0-9A-HJKMNP-TV-Z]{25}$
	uuidForm       lexical = isUUID       // ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$
	sha256Form     lexical = isSHA256Hex  // ^[0-9a-f]{64}$
	terminalIDForm lexical = isTerminalID // ^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$
)

func isLowerHex(c byte) bool { return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') }

func isLowerAlnum(c byte) bool { return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') }

// isCrockford reports an upper-case Crockford base32 digit: no I, L, O, U.
func isCrockford(c byte) bool {
	switch {
	case '0' <= c && c <= '9':
		return true
	case c < 'A' || c > 'Z':
		return false
	}
	return c != 'I' && c != 'L' && c != 'O' && c != 'U'
}

func isULID(s string) bool {
	if len(s) != 26 || s[0] < '0' || s[0] > '7' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isCrockford(s[i]) {
			return false
		}
	}
	return true
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isLowerHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isTerminalID(s string) bool {
	if len(s) < 1 || len(s) > 64 || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isLowerAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}
