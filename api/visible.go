package api

import (
	"fmt"
	"regexp"
)

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

const (
	maxVerifyURLLen = 2048
	maxAnchorLen    = 64 // characters of an anchor text
	maxInitialsLen  = 64 // characters of a paraf's initials or short name
)

// UsesMarks reports whether the job uses a field of v 2 and must travel
// as v 2 (VersionMarks).
func (j *Job) UsesMarks() bool { return j.marksField() != "" }

// marksField names the first field of v 2 the job uses, "" when none.
func (j *Job) marksField() string {
	if j.Signer.Jabatan != "" {
		return "signer.jabatan"
	}
	for i, d := range j.Documents {
		field := fmt.Sprintf("documents[%d]", i)
		switch {
		case d.Certify:
			return field + ".certify"
		case d.Visible == nil:
		case d.Visible.Mark != "":
			return field + ".visible.mark"
		case d.Visible.Anchor != nil:
			return field + ".visible.anchor"
		case d.Visible.Initials != "":
			return field + ".visible.initials"
		}
	}
	return ""
}

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
	switch v.Mark {
	case "", MarkTTD, MarkParaf:
	default:
		return refuse(ReasonMalformed, "%s.mark %q: want ttd or paraf", field, truncate(string(v.Mark)))
	}
	if err := checkText(field+".initials", v.Initials, false, maxInitialsLen); err != nil {
		return err
	}
	if v.Initials != "" && v.Mark != MarkParaf {
		return refuse(ReasonMalformed, "%s.initials are for a paraf", field)
	}
	if a := v.Anchor; a != nil {
		if len(v.Rect) != 0 {
			return refuse(ReasonMalformed, "%s: give rect or anchor, not both", field)
		}
		if err := checkText(field+".anchor.text", a.Text, true, maxAnchorLen); err != nil {
			return err
		}
		if a.Occurrence < 0 || a.Occurrence > 10000 {
			return refuse(ReasonMalformed, "%s.anchor.occurrence %d out of range 0..10000", field, a.Occurrence)
		}
		if len(a.Offset) != 0 && len(a.Offset) != 2 {
			return refuse(ReasonMalformed, "%s.anchor.offset: want 2 numbers dx, dy", field)
		}
		for _, x := range a.Offset {
			if x < -14400 || x > 14400 || x != x {
				return refuse(ReasonMalformed, "%s.anchor.offset: %v out of range -14400..14400", field, x)
			}
		}
		if len(a.Size) != 0 && len(a.Size) != 2 {
			return refuse(ReasonMalformed, "%s.anchor.size: want 2 numbers width, height", field)
		}
		for _, x := range a.Size {
			if x <= 0 || x > 14400 || x != x {
				return refuse(ReasonMalformed, "%s.anchor.size: %v out of range (0, 14400]", field, x)
			}
		}
	}
	if v.VerifyURL != "" {
		if len(v.VerifyURL) > maxVerifyURLLen || !verifyURLPattern.MatchString(v.VerifyURL) {
			return refuse(ReasonMalformed, "%s.verify_url: want an http or https URL with a host name, of at most %d characters, printable ASCII as RFC 3986 allows it (percent-encode the rest, punycode for the host), e.g. https://tte.example.go.id/v/01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", field, maxVerifyURLLen)
		}
	}
	return nil
}
