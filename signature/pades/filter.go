package pades

// decode undoes the stream's filters, inflating against b. Only
// FlateDecode is supported: it is what cross-reference and object streams
// use in practice, and those are the only streams this package reads.
func (b *budget) decode(s *stream) ([]byte, error) {
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
	out, err := b.inflate(s.data)
	if err != nil {
		return nil, err
	}
	parms, _ := s.dict["DecodeParms"].(dict)
	if a, ok := s.dict["DecodeParms"].(array); ok && len(a) == 1 {
		parms, _ = a[0].(dict)
	}
	return unpredict(out, parms)
}

// unpredict reverses a PNG predictor (§7.4.4.4, Predictor 10 to 15) for
// 8-bit, one-colour data, the form cross-reference streams use. It works
// in place: row r is written to b[r*w:], before the bytes of row r it
// still has to read, so the decoded data costs no second copy.
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
	rows := len(b) / row
	for r := range rows {
		typ := b[r*row]
		in := b[r*row+1 : r*row+row]
		cur := b[r*w : r*w+w]
		var prev []byte
		if r > 0 {
			prev = b[(r-1)*w : r*w]
		}
		for x := range w {
			var left, up, upLeft byte
			if x > 0 {
				left = cur[x-1]
			}
			if prev != nil {
				up = prev[x]
				if x > 0 {
					upLeft = prev[x-1]
				}
			}
			c := in[x]
			switch typ {
			case 0:
			case 1:
				c += left
			case 2:
				c += up
			case 3:
				c += byte((int(left) + int(up)) / 2)
			case 4:
				c += paeth(left, up, upLeft)
			default:
				return nil, malformed("bad PNG filter type %d", typ)
			}
			cur[x] = c
		}
	}
	return b[:rows*w], nil
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
