package pades

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// writeObj serialises a direct object. Strings are always written in hex
// so that any bytes round-trip without escaping rules.
func writeObj(w *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		w.WriteString("null")
	case bool:
		w.WriteString(strconv.FormatBool(v))
	case int64:
		w.WriteString(strconv.FormatInt(v, 10))
	case float64:
		w.WriteString(formatReal(v))
	case name:
		writeName(w, v)
	case pdfString:
		fmt.Fprintf(w, "<%X>", []byte(v))
	case array:
		w.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				w.WriteByte(' ')
			}
			writeObj(w, e)
		}
		w.WriteByte(']')
	case dict:
		keys := make([]name, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.WriteString("<<")
		for _, k := range keys {
			writeName(w, k)
			w.WriteByte(' ')
			writeObj(w, v[k])
			w.WriteByte('\n')
		}
		w.WriteString(">>")
	case ref:
		fmt.Fprintf(w, "%d %d R", v.num, v.gen)
	default:
		// Streams are only ever indirect objects, never values inside a
		// dictionary that this package rewrites.
		w.WriteString("null")
	}
}

// formatReal writes a real without exponent, as §7.3.3 requires.
func formatReal(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0"
	}
	s := strconv.FormatFloat(f, 'f', 4, 64)
	s = bytesTrimZeros(s)
	if s == "-0" {
		return "0"
	}
	return s
}

func bytesTrimZeros(s string) string {
	if !bytes.ContainsRune([]byte(s), '.') {
		return s
	}
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return string(bytes.TrimSuffix([]byte(s), []byte(".")))
}

// writeName escapes with #xx everything outside the regular printable
// characters (§7.3.5).
func writeName(w *bytes.Buffer, n name) {
	w.WriteByte('/')
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c < 0x21 || c > 0x7e || c == '#' || isDelim(c) {
			fmt.Fprintf(w, "#%02X", c)
			continue
		}
		w.WriteByte(c)
	}
}

// update appends an incremental update (§7.5.6) to the original bytes.
type update struct {
	d    *document
	buf  bytes.Buffer
	next int
	rows []xrefRow
}

type xrefRow struct {
	num, gen int
	off      int
}

func newUpdate(d *document) *update {
	u := &update{d: d}
	u.buf.Grow(len(d.b) + 64<<10)
	u.buf.Write(d.b)
	if len(d.b) > 0 && d.b[len(d.b)-1] != '\n' && d.b[len(d.b)-1] != '\r' {
		u.buf.WriteByte('\n')
	}
	size, _ := d.trailer["Size"].(int64)
	u.next = int(max(size, 1))
	for n := range d.xref {
		u.next = max(u.next, n+1)
	}
	return u
}

func (u *update) alloc() int {
	u.next++
	return u.next - 1
}

func (u *update) begin(num, gen int) {
	u.rows = append(u.rows, xrefRow{num, gen, u.buf.Len()})
	fmt.Fprintf(&u.buf, "%d %d obj\n", num, gen)
}

func (u *update) end() { u.buf.WriteString("\nendobj\n") }

func (u *update) put(num, gen int, v any) {
	u.begin(num, gen)
	writeObj(&u.buf, v)
	u.end()
}

// putStream writes a stream object with the data unfiltered.
func (u *update) putStream(num int, d dict, data []byte) {
	d["Length"] = int64(len(data))
	u.begin(num, 0)
	writeObj(&u.buf, d)
	u.buf.WriteString("\nstream\n")
	u.buf.Write(data)
	u.buf.WriteString("\nendstream")
	u.end()
}

// trailerDict carries the keys a reader needs from the old trailer.
func (u *update) trailerDict() dict {
	t := dict{"Size": int64(u.next), "Prev": int64(u.d.startxref)}
	for _, k := range []name{"Root", "Info", "ID"} {
		if v, ok := u.d.trailer[k]; ok {
			t[k] = v
		}
	}
	return t
}

// runs groups sorted rows into consecutive object numbers.
func (u *update) runs() [][]xrefRow {
	slices.SortFunc(u.rows, func(a, b xrefRow) int { return a.num - b.num })
	var out [][]xrefRow
	for i, r := range u.rows {
		if i > 0 && r.num == u.rows[i-1].num+1 {
			out[len(out)-1] = append(out[len(out)-1], r)
			continue
		}
		out = append(out, []xrefRow{r})
	}
	return out
}

// finish writes the cross-reference section of the same kind as the
// document's newest one, so that a reader that handled the original
// handles the update, and returns the complete file.
func (u *update) finish() []byte {
	if u.d.xrefStream {
		num := u.alloc()
		off := u.buf.Len()
		u.rows = append(u.rows, xrefRow{num, 0, off})
		t := u.trailerDict()
		width := 4
		if off >= 1<<32 {
			width = 8
		}
		var index array
		var data []byte
		for _, run := range u.runs() {
			index = append(index, int64(run[0].num), int64(len(run)))
			for _, r := range run {
				row := make([]byte, 1+width+2)
				row[0] = 1
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], uint64(r.off))
				copy(row[1:1+width], b[8-width:])
				binary.BigEndian.PutUint16(row[1+width:], uint16(r.gen))
				data = append(data, row...)
			}
		}
		t["Type"] = name("XRef")
		t["W"] = array{int64(1), int64(width), int64(2)}
		t["Index"] = index
		u.putStream(num, t, data)
		fmt.Fprintf(&u.buf, "startxref\n%d\n%%%%EOF\n", off)
		return u.buf.Bytes()
	}
	off := u.buf.Len()
	u.buf.WriteString("xref\n")
	for _, run := range u.runs() {
		fmt.Fprintf(&u.buf, "%d %d\n", run[0].num, len(run))
		for _, r := range run {
			fmt.Fprintf(&u.buf, "%010d %05d n\r\n", r.off, r.gen)
		}
	}
	u.buf.WriteString("trailer\n")
	writeObj(&u.buf, u.trailerDict())
	fmt.Fprintf(&u.buf, "\nstartxref\n%d\n%%%%EOF\n", off)
	return u.buf.Bytes()
}

// clone copies a dictionary one level deep, enough to change its keys.
func clone(d dict) dict {
	c := make(dict, len(d)+2)
	for k, v := range d {
		c[k] = v
	}
	return c
}
