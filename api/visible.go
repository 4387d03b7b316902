package api

import "regexp"

// Baseline levels a result reports (ETSI EN 319 142-1 for pades; the same
// names for cms in CAdES terms, EN 319 122-1, up to B-LT).
const (
	LevelBB = "B-B" // signature only
	LevelBT = "B-T" // with an RFC 3161 signature timestamp
	// LevelBLT adds the validation data: the chain and the revocation
	// data (OCSP responses, CRLs) issued after the timestamp; pades in a
	// DSS, cms as certificate-values and revocation-values (edition 3).
	LevelBLT = "B-LT"
	// LevelBLTA adds a document timestamp over it all; pades only
	// (edition 3).
	LevelBLTA = "B-LTA"
)

const maxVerifyURLLen = 2048

// verifyURLPattern is the verify_url rule of job.schema.json, to the
// character: http or https (the scheme in any case, RFC 3986 §3.1), a host
// name, an optional port, and the rest printable ASCII as RFC 3986 allows
// it, every % followed by two hex digits. So the QR code holds exactly what
// every scanner opens and no bidi control can make it read as another URL:
// a non-ASCII host is written in punycode, anything else percent-encoded.
// url.Parse is no judge of this: it takes a space, U+202E and a port
// without a host.
var verifyURLPattern = regexp.MustCompile(`^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]*)?(?:[/?#](?:[\x21\x23\x24\x26-\x3b\x3d\x3f-\x5a\x5f\x61-\x7a\x7e]|%[0-9A-Fa-f]{2})*)?$`)

// validate checks a visible block request; nil means no visible block.
func (v *Visible) validate(field string) error {
	if v == nil {
		return nil
	}
	if v.Page < 0 || v.Page > 100000 {
		return refuse(ReasonMalformed, "%s.page %d out of range", field, v.Page)
	}
	if len(v.Rect) != 0 {
		if len(v.Rect) != 4 {
			return refuse(ReasonMalformed, "%s.rect: want 4 numbers x1, y1, x2, y2", field)
		}
		for _, x := range v.Rect {
			if x < 0 || x > 14400 || x != x {
				return refuse(ReasonMalformed, "%s.rect: %v out of range 0..14400", field, x)
			}
		}
		if v.Rect[2] <= v.Rect[0] || v.Rect[3] <= v.Rect[1] {
			return refuse(ReasonMalformed, "%s.rect: want x2 > x1 and y2 > y1", field)
		}
	}
	if v.VerifyURL != "" {
		if len(v.VerifyURL) > maxVerifyURLLen || !verifyURLPattern.MatchString(v.VerifyURL) {
			return refuse(ReasonMalformed, "%s.verify_url: want an http or https URL with a host name, of at most %d characters, printable ASCII as RFC 3986 allows it (percent-encode the rest, punycode for the host), e.g. https://tte.example.go.id/v/01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", field, maxVerifyURLLen)
		}
	}
	return nil
}
