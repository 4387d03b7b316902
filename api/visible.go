package api

import "net/url"

// PAdES baseline levels a pades result reports.
const (
	LevelBB = "B-B" // signature only
	LevelBT = "B-T" // with an RFC 3161 signature timestamp
)

const maxVerifyURLLen = 2048

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
		u, err := url.Parse(v.VerifyURL)
		if err != nil || len(v.VerifyURL) > maxVerifyURLLen || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return refuse(ReasonMalformed, "%s.verify_url: want an http(s) URL of at most %d bytes", field, maxVerifyURLLen)
		}
	}
	return nil
}
