package pades

// page is one leaf of the page tree.
type page struct {
	ref  ref
	dict dict
	// box is the visible area: the CropBox where there is one, else the
	// MediaBox (§14.11.2); normalised so x0 < x1, y0 < y1.
	box [4]float64
}

// maxPages bounds the page tree walk.
const maxPages = 100000

// catalog returns the document catalog.
func (d *document) catalog() (ref, dict, error) {
	r, _ := d.trailer["Root"].(ref)
	c, err := d.dictOf(r, "catalog")
	if err != nil {
		return ref{}, nil, err
	}
	return r, c, nil
}

// pages walks the page tree (§7.7.3) in order, with inherited MediaBox.
func (d *document) pages() ([]page, error) {
	_, cat, err := d.catalog()
	if err != nil {
		return nil, err
	}
	root, ok := cat["Pages"].(ref)
	if !ok {
		return nil, malformed("catalog has no /Pages reference")
	}
	var out []page
	seen := map[ref]bool{}
	var walk func(r ref, box, crop any, depth int) error
	walk = func(r ref, box, crop any, depth int) error {
		if depth > maxDepth || seen[r] || len(out) >= maxPages {
			return malformed("page tree loops or is too deep")
		}
		seen[r] = true
		n, err := d.dictOf(r, "page tree node")
		if err != nil {
			return err
		}
		if mb, ok := n["MediaBox"]; ok {
			box = mb
		}
		if cb, ok := n["CropBox"]; ok {
			crop = cb
		}
		kids, isNode := n["Kids"]
		if n["Type"] == name("Page") || !isNode {
			mb, err := d.rect(box)
			if err != nil {
				return err
			}
			if cb, err := d.rect(crop); err == nil {
				// §14.11.2: the CropBox is clipped to the MediaBox.
				c := [4]float64{max(cb[0], mb[0]), max(cb[1], mb[1]), min(cb[2], mb[2]), min(cb[3], mb[3])}
				if c[2]-c[0] >= 1 && c[3]-c[1] >= 1 {
					mb = c
				}
			}
			out = append(out, page{ref: r, dict: n, box: mb})
			return nil
		}
		ka, err := d.resolve(kids)
		if err != nil {
			return err
		}
		arr, _ := ka.(array)
		for _, k := range arr {
			kr, ok := k.(ref)
			if !ok {
				return malformed("page tree kid is not a reference")
			}
			if err := walk(kr, box, crop, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, nil, nil, 0); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, malformed("document has no pages")
	}
	return out, nil
}

// rect reads a rectangle (§7.9.5) and normalises its corners.
func (d *document) rect(v any) ([4]float64, error) {
	o, err := d.resolve(v)
	if err != nil {
		return [4]float64{}, err
	}
	a, _ := o.(array)
	if len(a) != 4 {
		return [4]float64{}, malformed("page has no valid /MediaBox")
	}
	var r [4]float64
	for i, e := range a {
		e, err := d.resolve(e)
		if err != nil {
			return r, err
		}
		f, ok := number(e)
		if !ok {
			return r, malformed("page has no valid /MediaBox")
		}
		r[i] = f
	}
	if r[0] > r[2] {
		r[0], r[2] = r[2], r[0]
	}
	if r[1] > r[3] {
		r[1], r[3] = r[3], r[1]
	}
	if r[2]-r[0] < 1 || r[3]-r[1] < 1 {
		return r, malformed("page /MediaBox is empty")
	}
	return r, nil
}

// arrayOf resolves v to an array; a missing value is an empty array.
func (d *document) arrayOf(v any, what string) (array, error) {
	o, err := d.resolve(v)
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, nil
	}
	a, ok := o.(array)
	if !ok {
		return nil, malformed("%s is not an array", what)
	}
	return a, nil
}
