package pades

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// maxDecoded bounds a decoded stream so a small compressed bomb cannot
// exhaust memory.
const maxDecoded = 64 << 20

// decode undoes the stream's filters. Only FlateDecode is supported: it is
// what cross-reference and object streams use in practice, and those are
// the only streams this package reads.
func decode(s *stream) ([]byte, error) {
	var filters array
	switch f := s.dict["Filter"].(type) {
	case nil:
		return s.data, nil
	case name:
		filters = array{f}
	case array:
		filters = f
	default:
		return nil, malformed("bad stream /Filter")
	}
	if len(filters) != 1 || filters[0] != name("FlateDecode") {
		return nil, malformed("unsupported stream filter %v", filters)
	}
	zr, err := zlib.NewReader(bytes.NewReader(s.data))
	if err != nil {
		return nil, fmt.Errorf("%w: flate stream: %v", ErrMalformed, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("%w: flate stream: %v", ErrMalformed, err)
	}
	if len(out) > maxDecoded {
		return nil, malformed("stream decodes to more than %d bytes", maxDecoded)
	}
	parms, _ := s.dict["DecodeParms"].(dict)
	if a, ok := s.dict["DecodeParms"].(array); ok && len(a) == 1 {
		parms, _ = a[0].(dict)
	}
	return unpredict(out, parms)
}

// unpredict reverses a PNG predictor (§7.4.4.4, Predictor 10 to 15) for
// 8-bit, one-colour data, the form cross-reference streams use.
func unpredict(b []byte, parms dict) ([]byte, error) {
	pred, _ := parms["Predictor"].(int64)
	if pred <= 1 {
		return b, nil
	}
	if pred < 10 {
		return nil, malformed("unsupported predictor %d", pred)
	}
	cols := int64(1)
	if c, ok := parms["Columns"].(int64); ok {
		cols = c
	}
	colors, ok := parms["Colors"].(int64)
	if !ok {
		colors = 1
	}
	bpc, ok := parms["BitsPerComponent"].(int64)
	if !ok {
		bpc = 8
	}
	if cols < 1 || cols > 1<<16 || colors != 1 || bpc != 8 {
		return nil, malformed("unsupported predictor parameters")
	}
	w := int(cols)
	row := w + 1
	if len(b)%row != 0 {
		return nil, malformed("predicted data is not whole rows")
	}
	out := make([]byte, 0, len(b)/row*w)
	prev := make([]byte, w)
	for i := 0; i < len(b); i += row {
		cur := make([]byte, w)
		copy(cur, b[i+1:i+row])
		for x := range cur {
			var left, upLeft byte
			if x > 0 {
				left, upLeft = cur[x-1], prev[x-1]
			}
			up := prev[x]
			switch b[i] {
			case 0:
			case 1:
				cur[x] += left
			case 2:
				cur[x] += up
			case 3:
				cur[x] += byte((int(left) + int(up)) / 2)
			case 4:
				cur[x] += paeth(left, up, upLeft)
			default:
				return nil, malformed("bad PNG filter type %d", b[i])
			}
		}
		out = append(out, cur...)
		prev = cur
	}
	return out, nil
}

func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
