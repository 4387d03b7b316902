package pades

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
)

// Anchor asks FindAnchor for a piece of text in the letter, the way
// letter systems that place the signature block by a marker (tag_koordinat
// "^", "#", "$" or a placeholder such as "${ttd_kepala}") name it instead
// of giving coordinates.
type Anchor struct {
	// Text is what to look for. Leading and trailing white space is
	// ignored; a run of white space inside it matches any run of white
	// space (or a word gap) on the page. The match is case-sensitive and
	// never spans two lines.
	Text string
	// Occurrence is 1-based, counted through the pages in order and, on a
	// page, in the order the text is drawn; 0 means 1.
	Occurrence int
	// Offset is added to the anchor's origin to give Found.Origin, in
	// points of the page's default user space.
	Offset [2]float64
	// Page, when not 0, looks only on that 1-based page.
	Page int
}

// Found is where FindAnchor found the anchor.
type Found struct {
	// Page is 1-based.
	Page int
	// Rect is the anchor's bounding box (x0, y0, x1, y1) in the page's
	// default user space: the space of Appearance.Rect, before the
	// page's /Rotate turns it for display. Its height runs from the
	// font's descent to its ascent.
	Rect [4]float64
	// Origin is the anchor's first glyph origin (on the baseline, at the
	// start of the glyph) plus Anchor.Offset, in default user space.
	Origin [2]float64
	// Rotate is the page's /Rotate (0, 90, 180 or 270): a caller that
	// places a block below the anchor as a reader sees it needs it, since
	// "below" on a page turned by 90° is towards larger x.
	Rotate int
}

var (
	// ErrAnchorNotFound means the anchor's text, or the occurrence of it
	// asked for, is not in the page content. The error is an
	// *AnchorNotFoundError that says how many occurrences there are.
	ErrAnchorNotFound = errors.New("pades: anchor not found")

	// ErrBadAnchor means the Anchor itself is unusable: no text, or a
	// negative occurrence or page.
	ErrBadAnchor = errors.New("pades: bad anchor")
)

// AnchorNotFoundError is the ErrAnchorNotFound a search returns.
type AnchorNotFoundError struct {
	Text       string
	Occurrence int // asked for, 1-based
	Found      int // occurrences there are
	Page       int // the page searched; 0 for all pages
}

func (e *AnchorNotFoundError) Error() string {
	where := "the document"
	if e.Page != 0 {
		where = fmt.Sprintf("page %d", e.Page)
	}
	return fmt.Sprintf("%v: %q occurrence %d asked for, %d found in %s", ErrAnchorNotFound, e.Text, e.Occurrence, e.Found, where)
}

// Is makes errors.Is(err, ErrAnchorNotFound) hold.
func (e *AnchorNotFoundError) Is(target error) bool { return target == ErrAnchorNotFound }

// ContentError means the content of a page (its content streams, a form
// XObject it draws or a font it uses) could not be read. Err wraps
// ErrMalformed or ErrTooComplex.
type ContentError struct {
	Page int
	Err  error
}

func (e *ContentError) Error() string {
	return fmt.Sprintf("pades: page %d content: %v", e.Page, e.Err)
}

// Unwrap gives the cause.
func (e *ContentError) Unwrap() error { return e.Err }

// FindAnchor looks for a.Text in the text the pages of pdf draw and
// returns its a.Occurrence-th occurrence, counted in page order and, on
// a page, in the order the text is drawn. Only page content is read
// (form XObjects included), not annotations. Pages are read in order up
// to the one the anchor is on, within lim: decoded content streams count
// against MaxDecompressedBytes, and their operators, operands and the
// glyphs they draw (about 128 bytes each) against MaxParsedBytes, so a
// hostile content stream ends in ErrTooComplex; the default limits take
// a few hundred pages of dense text.
//
// It returns ErrBadAnchor, ErrPage when a.Page is not in the document,
// ErrAnchorNotFound (an *AnchorNotFoundError), a *ContentError when a
// page's content cannot be read, or the errors of reading the document
// (ErrMalformed, ErrEncrypted, ErrTooComplex).
func FindAnchor(pdf []byte, a Anchor, lim Limits) (f Found, err error) {
	pat := anchorPattern(a.Text)
	if len(pat) == 0 {
		return Found{}, fmt.Errorf("%w: no text", ErrBadAnchor)
	}
	occ := a.Occurrence
	if occ == 0 {
		occ = 1
	}
	if occ < 0 || a.Page < 0 {
		return Found{}, fmt.Errorf("%w: occurrence %d, page %d", ErrBadAnchor, a.Occurrence, a.Page)
	}
	bud := newBudget(lim)
	defer func() {
		// A read that ran out of budget may have been tolerated (a font
		// read as a fallback); what was found then is not to be trusted.
		if bud.err != nil {
			f, err = Found{}, bud.err
		}
	}()
	d, err := parse(pdf, bud)
	if err != nil {
		return Found{}, err
	}
	pages, err := d.pages()
	if err != nil {
		return Found{}, err
	}
	if a.Page > len(pages) {
		return Found{}, fmt.Errorf("%w: page %d of %d", ErrPage, a.Page, len(pages))
	}
	x := newTextExtractor(d)
	seen := 0
	for i, pg := range pages {
		if a.Page != 0 && i+1 != a.Page {
			continue
		}
		glyphs, err := x.page(pg)
		if err != nil {
			return Found{}, &ContentError{Page: i + 1, Err: err}
		}
		for _, ln := range textLines(glyphs) {
			for _, m := range ln.find(pat) {
				seen++
				if seen < occ {
					continue
				}
				f := Found{Page: i + 1, Rect: m.rect, Rotate: x.rotate(pg.dict)}
				f.Origin = [2]float64{m.origin[0] + a.Offset[0], m.origin[1] + a.Offset[1]}
				return f, nil
			}
		}
	}
	return Found{}, &AnchorNotFoundError{Text: a.Text, Occurrence: occ, Found: seen, Page: a.Page}
}

// anchorPattern is the anchor's text with each run of white space made
// one space, trimmed.
func anchorPattern(s string) []rune {
	return []rune(strings.Join(strings.Fields(s), " "))
}

// textLine is the text of one line: runes, with the glyph each came from
// (-1 for a space put in for a gap between glyphs).
type textLine struct {
	text   []rune
	glyph  []int
	glyphs []textGlyph
	last   []int // the latest glyphs of the line, for overstruck
}

// overstrikeWindow is how many of a line's latest glyphs a glyph is
// compared with for overstriking.
const overstrikeWindow = 8

// overstruck reports whether g repeats one of the line's latest glyphs
// at (almost) the same place: writers fake bold or a shadow by drawing
// text twice, a reader sees it once, and an anchor drawn so must count
// once.
func overstruck(gs []textGlyph, last []int, g *textGlyph) bool {
	for _, i := range last {
		o := &gs[i]
		if o.text == g.text && math.Hypot(o.org[0]-g.org[0], o.org[1]-g.org[1]) < 0.1*max(g.size, o.size) {
			return true
		}
	}
	return false
}

type anchorMatch struct {
	rect   [4]float64
	origin [2]float64
}

// find returns every match of pat in the line, not overlapping, in order.
func (ln *textLine) find(pat []rune) []anchorMatch {
	var out []anchorMatch
	for i := 0; i+len(pat) <= len(ln.text); {
		if !runesEqual(ln.text[i:i+len(pat)], pat) {
			i++
			continue
		}
		m := anchorMatch{rect: [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}}
		first := true
		for k := i; k < i+len(pat); k++ {
			gi := ln.glyph[k]
			if gi < 0 || unicode.IsSpace(ln.text[k]) {
				continue
			}
			g := &ln.glyphs[gi]
			if first {
				m.origin, first = g.org, false
			}
			m.rect = [4]float64{min(m.rect[0], g.box[0]), min(m.rect[1], g.box[1]), max(m.rect[2], g.box[2]), max(m.rect[3], g.box[3])}
		}
		if !first {
			out = append(out, m)
		}
		i += len(pat)
	}
	return out
}

func runesEqual(a, b []rune) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Thresholds for joining glyphs into lines, in units of the font size:
// a glyph belongs to the line of the one before when it stands on the
// same baseline (within baseSlack) and does not step back more than
// backSlack; a gap wider than wordGap is a word space. Kerning pairs are
// well under 0.15 em and word spaces at least 0.2 em in the fonts letters
// use, so a large negative TJ kern reads as a space and a small one does
// not split a word.
const (
	baseSlack = 0.3
	backSlack = 0.6
	wordGap   = 0.15
)

// textLines cuts the glyphs, in drawing order, into lines.
func textLines(gs []textGlyph) []textLine {
	var lines []textLine
	var cur *textLine
	var prev *textGlyph
	for i := range gs {
		g := &gs[i]
		gap, same := 0.0, false
		if prev != nil {
			size := max(g.size, prev.size)
			dx, dy := g.org[0]-prev.end[0], g.org[1]-prev.end[1]
			along := dx*prev.dir[0] + dy*prev.dir[1]
			across := -dx*prev.dir[1] + dy*prev.dir[0]
			parallel := g.dir[0]*prev.dir[0]+g.dir[1]*prev.dir[1] > 0.99
			same = parallel && math.Abs(across) <= baseSlack*size && along >= -backSlack*size
			gap = along / max(size, 1e-9)
		}
		if same && overstruck(gs, cur.last, g) {
			continue
		}
		if !same {
			lines = append(lines, textLine{glyphs: gs})
			cur = &lines[len(lines)-1]
		} else if gap > wordGap {
			cur.add(' ', -1)
		}
		cur.last = append(cur.last, i)
		if len(cur.last) > overstrikeWindow {
			cur.last = cur.last[1:]
		}
		for _, r := range g.text {
			cur.add(r, i)
		}
		prev = g
	}
	return lines
}

// add appends r, folding runs of white space into one space.
func (ln *textLine) add(r rune, glyph int) {
	if unicode.IsSpace(r) {
		if n := len(ln.text); n == 0 || ln.text[n-1] == ' ' {
			return
		}
		r = ' '
	}
	ln.text = append(ln.text, r)
	ln.glyph = append(ln.glyph, glyph)
}
