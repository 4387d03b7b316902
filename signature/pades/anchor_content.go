package pades

import (
	"fmt"
	"math"
)

// Bounds on reading page content that the Limits do not cover: they
// protect time and the stack, and are far above what letters use.
const (
	maxFormDepth    = 12      // form XObjects drawn inside form XObjects
	maxStateDepth   = 512     // q without Q
	maxOperands     = 1 << 12 // operands before one operator
	maxContentOps   = 1 << 22 // operators over the whole search
	maxPageGlyphs   = 1 << 18 // glyphs on one page, forms included
	maxInheritDepth = maxDepth
)

// costGlyph is what a glyph read from content counts against
// MaxParsedBytes: the heap of a textGlyph and its text.
const costGlyph = 128

// textMatrix is a PDF transformation matrix [a b c d e f] (ISO 32000-1
// §8.3.4): a point (x, y) maps to (ax + cy + e, bx + dy + f).
type textMatrix [6]float64

var identityMatrix = textMatrix{1, 0, 0, 1, 0, 0}

// mul is m then n: the product m × n of §8.3.4.
func (m textMatrix) mul(n textMatrix) textMatrix {
	return textMatrix{
		m[0]*n[0] + m[1]*n[2], m[0]*n[1] + m[1]*n[3],
		m[2]*n[0] + m[3]*n[2], m[2]*n[1] + m[3]*n[3],
		m[4]*n[0] + m[5]*n[2] + n[4], m[4]*n[1] + m[5]*n[3] + n[5],
	}
}

func (m textMatrix) apply(x, y float64) [2]float64 {
	return [2]float64{m[0]*x + m[2]*y + m[4], m[1]*x + m[3]*y + m[5]}
}

func translateMatrix(x, y float64) textMatrix { return textMatrix{1, 0, 0, 1, x, y} }

// textGlyph is one glyph drawn, in default user space.
type textGlyph struct {
	text string
	org  [2]float64 // origin, on the baseline
	end  [2]float64 // where the next glyph would start
	dir  [2]float64 // unit vector along the baseline
	size float64    // font size after the text and current matrices
	box  [4]float64 // from descent to ascent, advance wide
}

// textExtractor reads the text of a document's pages.
type textExtractor struct {
	d     *document
	fonts map[ref]*textFont
	ops   int
}

func newTextExtractor(d *document) *textExtractor {
	return &textExtractor{d: d, fonts: map[ref]*textFont{}}
}

// inherited finds key in the page dictionary or its /Parent chain
// (§7.7.3.4).
func (x *textExtractor) inherited(n dict, key name) any {
	for range maxInheritDepth {
		if v, ok := n[key]; ok {
			return v
		}
		p, err := x.d.dictOf(n["Parent"], "page parent")
		if err != nil || p == nil {
			return nil
		}
		n = p
	}
	return nil
}

// rotate is the page's /Rotate as 0, 90, 180 or 270.
func (x *textExtractor) rotate(pg dict) int {
	v, err := x.d.resolve(x.inherited(pg, "Rotate"))
	if err != nil {
		return 0
	}
	r, _ := v.(int64)
	if r%90 != 0 {
		return 0
	}
	return int((r%360 + 360) % 360)
}

// page returns the glyphs the page draws, in drawing order.
func (x *textExtractor) page(pg page) ([]textGlyph, error) {
	res, _ := x.d.dictOf(x.inherited(pg.dict, "Resources"), "resources")
	c, err := x.d.resolve(pg.dict["Contents"])
	if err != nil {
		return nil, err
	}
	var parts []any
	switch c := c.(type) {
	case nil:
		return nil, nil
	case *stream:
		parts = []any{c}
	case array:
		parts = c
	default:
		return nil, malformed("page /Contents is neither a stream nor an array")
	}
	// §7.8.2: the streams of an array are one content stream, split at
	// token boundaries.
	var data []byte
	for _, p := range parts {
		s, err := x.d.resolve(p)
		if err != nil {
			return nil, err
		}
		st, ok := s.(*stream)
		if !ok {
			continue
		}
		b, err := x.streamData(st)
		if err != nil {
			return nil, err
		}
		// The copy is heap the budget has not seen: an array naming
		// one stream many times would otherwise build a huge buffer.
		if err := x.d.bud.parse(len(b) + 1); err != nil {
			return nil, err
		}
		data = append(append(data, b...), '\n')
	}
	r := &contentRun{x: x, res: res, gs: graphicsState{ctm: identityMatrix, th: 1}}
	if err := r.exec(data); err != nil {
		return nil, err
	}
	return r.glyphs, nil
}

// graphicsState is what q and Q save of the graphics state (§8.4.1):
// the current matrix and the text state parameters (§9.3.1).
type graphicsState struct {
	ctm                  textMatrix
	font                 *textFont
	size, tc, tw, th, tl float64
	rise                 float64
}

// contentRun interprets one content stream (§8.2, §9.4) for its text.
type contentRun struct {
	x       *textExtractor
	res     dict
	gs      graphicsState
	stack   []graphicsState
	dropped int // q past maxStateDepth, matched by Q
	tm, tlm textMatrix
	depth   int
	glyphs  []textGlyph
}

func (r *contentRun) exec(data []byte) error {
	l := r.x.d.lexer(data, 0)
	bud := r.x.d.bud
	var operands []any
	for {
		l.skip()
		if bud.err != nil {
			return bud.err
		}
		if l.pos >= len(l.b) {
			return nil
		}
		c := l.b[l.pos]
		switch {
		case c == '/' || c == '(' || c == '<' || c == '[' || c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9'):
			v, err := l.object(0)
			if err != nil {
				return err
			}
			if len(operands) >= maxOperands {
				return malformed("more than %d operands for one operator", maxOperands)
			}
			operands = append(operands, v)
			continue
		case isDelim(c):
			l.pos++
			operands = operands[:0]
			continue
		}
		op := l.keyword()
		if op == "" {
			if bud.err != nil {
				return bud.err
			}
			l.pos++
			continue
		}
		r.x.ops++
		if r.x.ops > maxContentOps {
			return fmt.Errorf("%w: content operators exceed %d", ErrTooComplex, maxContentOps)
		}
		if op == "BI" {
			if err := skipInlineImage(l); err != nil {
				return err
			}
		} else if err := r.do(op, operands); err != nil {
			return err
		}
		operands = operands[:0]
	}
}

// skipInlineImage passes an inline image (§8.9.7) from after BI to after
// EI. Its data is binary; the end is EI between white space, which is
// what viewers look for too.
func skipInlineImage(l *lexer) error {
	for {
		l.skip()
		if l.pos >= len(l.b) {
			return nil
		}
		c := l.b[l.pos]
		if c == '/' || c == '(' || c == '<' || c == '[' || c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9') {
			if _, err := l.object(0); err != nil {
				return err
			}
			continue
		}
		kw := l.keyword()
		if kw == "ID" {
			break
		}
		if kw == "" {
			if l.bud != nil && l.bud.err != nil {
				return l.bud.err
			}
			l.pos++
		}
	}
	start := min(l.pos+1, len(l.b))
	for i := start; i+2 <= len(l.b); i++ {
		if l.b[i] == 'E' && l.b[i+1] == 'I' && isWhite(l.b[i-1]) && (i+2 == len(l.b) || isWhite(l.b[i+2])) {
			l.pos = i + 2
			return l.charge(i - start)
		}
	}
	l.pos = len(l.b)
	return l.charge(len(l.b) - start)
}

// nums reads the operands as n numbers, or reports false.
func numberOperands(ops []any, n int) ([]float64, bool) {
	if len(ops) < n {
		return nil, false
	}
	out := make([]float64, n)
	for i, v := range ops[len(ops)-n:] {
		f, ok := number(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return out, false
		}
		out[i] = f
	}
	return out, true
}

// do runs one operator. Operators with wrong operands are skipped, as
// viewers skip them.
func (r *contentRun) do(op string, ops []any) error {
	gs := &r.gs
	switch op {
	case "q":
		if len(r.stack) >= maxStateDepth {
			r.dropped++
			return nil
		}
		r.stack = append(r.stack, *gs)
	case "Q":
		if r.dropped > 0 {
			r.dropped--
		} else if n := len(r.stack); n > 0 {
			*gs = r.stack[n-1]
			r.stack = r.stack[:n-1]
		}
	case "cm":
		if v, ok := numberOperands(ops, 6); ok {
			gs.ctm = textMatrix(v).mul(gs.ctm)
		}
	case "BT":
		r.tm, r.tlm = identityMatrix, identityMatrix
	case "Tf":
		if len(ops) < 2 {
			return nil
		}
		if v, ok := numberOperands(ops, 1); ok {
			gs.size = v[0]
		}
		if n, ok := ops[len(ops)-2].(name); ok {
			gs.font = r.font(n)
		}
	case "Tc", "Tw", "Tz", "TL", "Ts":
		v, ok := numberOperands(ops, 1)
		if !ok {
			return nil
		}
		switch op {
		case "Tc":
			gs.tc = v[0]
		case "Tw":
			gs.tw = v[0]
		case "Tz":
			gs.th = v[0] / 100
		case "TL":
			gs.tl = v[0]
		case "Ts":
			gs.rise = v[0]
		}
	case "Td", "TD":
		if v, ok := numberOperands(ops, 2); ok {
			if op == "TD" {
				gs.tl = -v[1]
			}
			r.tlm = translateMatrix(v[0], v[1]).mul(r.tlm)
			r.tm = r.tlm
		}
	case "Tm":
		if v, ok := numberOperands(ops, 6); ok {
			r.tm = textMatrix(v)
			r.tlm = r.tm
		}
	case "T*":
		r.nextLine()
	case "Tj", "'":
		if op == "'" {
			r.nextLine()
		}
		if len(ops) > 0 {
			if s, ok := ops[len(ops)-1].(pdfString); ok {
				return r.show(s)
			}
		}
	case `"`:
		if len(ops) < 3 {
			return nil
		}
		if v, ok := numberOperands(ops[:len(ops)-1], 2); ok {
			gs.tw, gs.tc = v[0], v[1]
		}
		r.nextLine()
		if s, ok := ops[len(ops)-1].(pdfString); ok {
			return r.show(s)
		}
	case "TJ":
		if len(ops) == 0 {
			return nil
		}
		a, _ := ops[len(ops)-1].(array)
		for _, e := range a {
			switch e := e.(type) {
			case pdfString:
				if err := r.show(e); err != nil {
					return err
				}
			default:
				if n, ok := number(e); ok && !math.IsNaN(n) && !math.IsInf(n, 0) {
					r.tm = translateMatrix(-n/1000*gs.size*gs.th, 0).mul(r.tm)
				}
			}
		}
	case "Do":
		if len(ops) > 0 {
			if n, ok := ops[len(ops)-1].(name); ok {
				return r.form(n)
			}
		}
	}
	return nil
}

func (r *contentRun) nextLine() {
	r.tlm = translateMatrix(0, -r.gs.tl).mul(r.tlm)
	r.tm = r.tlm
}

// resource looks up /kind /n in the current resources.
func (r *contentRun) resource(kind, n name) (any, ref) {
	sub, err := r.x.d.dictOf(r.res[kind], "resources")
	if err != nil || sub == nil {
		return nil, ref{}
	}
	v := sub[n]
	rf, _ := v.(ref)
	o, err := r.x.d.resolve(v)
	if err != nil {
		return nil, ref{}
	}
	return o, rf
}

// font returns the font /n, or nil (text is then read as WinAnsi with
// Helvetica widths).
func (r *contentRun) font(n name) *textFont {
	v, rf := r.resource("Font", n)
	if rf != (ref{}) {
		if f, ok := r.x.fonts[rf]; ok {
			return f
		}
	}
	fd, _ := v.(dict)
	if fd == nil {
		return nil
	}
	f := r.x.loadFont(fd)
	if rf != (ref{}) {
		r.x.fonts[rf] = f
	}
	return f
}

// form draws the form XObject /n (§8.10): its content with its matrix
// after the current one, and its own resources, else the current ones.
func (r *contentRun) form(n name) error {
	v, _ := r.resource("XObject", n)
	s, ok := v.(*stream)
	if !ok || s.dict["Subtype"] != name("Form") {
		return nil
	}
	if r.depth >= maxFormDepth {
		return malformed("form XObjects nested deeper than %d", maxFormDepth)
	}
	data, err := r.x.streamData(s)
	if err != nil {
		return fmt.Errorf("form XObject /%s: %w", n, err)
	}
	m := identityMatrix
	if a, err := r.x.d.arrayOf(s.dict["Matrix"], "form /Matrix"); err == nil {
		if v, ok := numberOperands(a, 6); ok && len(a) == 6 {
			m = textMatrix(v)
		}
	}
	res := r.res
	if fr, err := r.x.d.dictOf(s.dict["Resources"], "form resources"); err == nil && fr != nil {
		res = fr
	}
	sub := &contentRun{x: r.x, res: res, gs: r.gs, depth: r.depth + 1, glyphs: r.glyphs}
	sub.gs.ctm = m.mul(r.gs.ctm)
	err = sub.exec(data)
	r.glyphs = sub.glyphs
	return err
}

// show draws the glyphs of s with the text state (§9.4.4).
func (r *contentRun) show(s pdfString) error {
	gs := &r.gs
	f := gs.font
	if f == nil {
		f = fallbackFont
	}
	for i := 0; i < len(s); {
		code, n := f.code(s[i:])
		i += n
		w := f.width(code)
		trm := textMatrix{gs.size * gs.th, 0, 0, gs.size, 0, gs.rise}.mul(r.tm).mul(gs.ctm)
		tx := w*gs.size + gs.tc
		if n == 1 && code == 32 {
			tx += gs.tw
		}
		tx *= gs.th
		r.tm = translateMatrix(tx, 0).mul(r.tm)
		if len(r.glyphs) >= maxPageGlyphs {
			return fmt.Errorf("%w: more than %d glyphs on the page", ErrTooComplex, maxPageGlyphs)
		}
		if err := r.x.d.bud.parse(costGlyph); err != nil {
			return err
		}
		g := textGlyph{text: f.text(code), org: trm.apply(0, 0), size: math.Hypot(trm[2], trm[3])}
		g.end = textMatrix{1, 0, 0, 1, 0, gs.rise}.mul(r.tm).mul(gs.ctm).apply(0, 0)
		if l := math.Hypot(trm[0], trm[1]); l > 0 {
			g.dir = [2]float64{trm[0] / l, trm[1] / l}
		} else if m := r.tm.mul(gs.ctm); math.Hypot(m[0], m[1]) > 0 {
			l := math.Hypot(m[0], m[1])
			g.dir = [2]float64{m[0] / l, m[1] / l}
		} else {
			g.dir = [2]float64{1, 0}
		}
		g.box = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
		for _, p := range [4][2]float64{{0, f.descent}, {w, f.descent}, {0, f.ascent}, {w, f.ascent}} {
			q := trm.apply(p[0], p[1])
			g.box = [4]float64{min(g.box[0], q[0]), min(g.box[1], q[1]), max(g.box[2], q[0]), max(g.box[3], q[1])}
		}
		if finite(g.org[:]) && finite(g.end[:]) && finite(g.box[:]) && finite(g.dir[:]) && !math.IsNaN(g.size) {
			r.glyphs = append(r.glyphs, g)
		}
	}
	return nil
}

// finite reports whether no value is NaN or infinite: a glyph placed by
// a matrix that overflowed is nowhere on the page.
func finite(v []float64) bool {
	for _, f := range v {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}
