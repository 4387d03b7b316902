package pades

import (
	"fmt"
	"slices"
	"strings"
)

// Active content is what makes a viewer run code, start programs, fetch
// or send data, or change what the letter shows, without the reader
// choosing to leave it. A signed letter with any of it can look in
// another viewer, or at another time, different from what the official
// saw on the kiosk, so the terminal refuses to sign it.
//
// Actions (ISO 32000-1 §12.6.4, table 198) are judged by their /S type:
//
//   - JavaScript (§12.6.4.16) runs code.
//   - Launch (§12.6.4.5) starts a program or opens a file.
//   - SubmitForm (§12.7.5.2) sends form data to a URL; ImportData
//     (§12.7.5.4) fills the fields from a file; ResetForm (§12.7.5.3),
//     Hide (§12.6.4.10) and SetOCGState (§12.6.4.12) change which values
//     and which parts of the page are shown.
//   - GoToR (§12.6.4.3) replaces the letter with another PDF, possibly
//     fetched, that can look like a page of it.
//   - Sound, Movie and Rendition (§12.6.4.8, §12.6.4.9, §12.6.4.13) play
//     media the kiosk never presented, from outside the file too, and a
//     Rendition action can carry JavaScript.
//   - GoToE (§12.6.4.4) opens an embedded file: refused with embedded
//     files, accepted with Limits.AllowEmbeddedFiles.
//   - Named (§12.6.4.11) is accepted for the four standard page
//     navigations of table 211; other names run viewer menu items
//     (printing, saving, quitting).
//   - GoTo, Thread, Trans and GoTo3DView only move the view within the
//     letter or animate a page change, and URI (§12.6.4.7) opens a link
//     in a browser, only when the reader clicks: a plain link is not
//     active content. A URI is plain when its scheme is http, https,
//     mailto or tel; javascript: runs code in some viewers, and file: or
//     a UNC path opens local files or sends the reader's Windows
//     credentials to a server.
//
// The /S type is judged whatever the dictionary's /Type says: a viewer
// runs the action a link points to by its /S. A structure element whose
// role happens to be named like one of these types is refused too; no
// writer we know of uses such names.
//
// Beyond the action type, what runs without a click is refused: the
// catalog's /OpenAction (§12.3.2, table 28) unless it is a destination or
// a lone GoTo, which only chooses the page the letter opens at, and any
// non-empty /AA additional actions (§12.6.3, tables 194 to 197), which
// fire on opening a page, printing, saving or typing in a field. Also
// refused: document JavaScript (the /JavaScript name tree, §7.7.4 table
// 31), XFA forms (§12.7.8), which a viewer may draw instead of the pages
// and which carry scripts, 3D annotations (§13.6), whose streams can run
// JavaScript on instantiation (§13.6.3), rich media annotations (Adobe
// extension level 3, ISO 32000-2 §13.7), which run Flash or JavaScript,
// and portfolios (/Collection, §12.3.5), which a viewer shows instead of
// the letter. Embedded files (§7.11.4) are refused unless
// Limits.AllowEmbeddedFiles.

// activeActions are the action types refused wherever they stand.
var activeActions = map[name]bool{
	"JavaScript": true, "Launch": true, "SubmitForm": true, "ImportData": true,
	"ResetForm": true, "Hide": true, "SetOCGState": true, "GoToR": true,
	"Sound": true, "Movie": true, "Rendition": true,
}

// standardNamed are the named actions of table 211.
var standardNamed = map[name]bool{"NextPage": true, "PrevPage": true, "FirstPage": true, "LastPage": true}

// activeWalk looks for active content in every object of a document.
type activeWalk struct {
	d             *document
	allowEmbedded bool
	catalog       int
	page          map[int]int // object number → 1-based page
	annot         map[int]int // annotation object number → 1-based page
}

// checkActive refuses a document with active content, with
// ErrActiveContent. It reads every object in the cross-reference, not
// only what the catalog reaches, since a viewer that repairs or
// reinterprets a file may reach what this parser does not: the catalog
// first, then the pages, then the rest in file order, object streams one
// after the other so that each is decoded once. An object that does not
// parse is refused as malformed: what it holds cannot be judged.
func (d *document) checkActive(pages []page, root ref, cat dict, allowEmbedded bool) error {
	w := &activeWalk{d: d, allowEmbedded: allowEmbedded, catalog: root.num, page: map[int]int{}, annot: map[int]int{}}
	if err := w.dict(cat, root.num, 0); err != nil {
		return err
	}
	done := map[int]bool{root.num: true}
	for i, pg := range pages {
		if _, ok := w.page[pg.ref.num]; !ok {
			w.page[pg.ref.num] = i + 1
		}
		// The annotations only name the page in messages; a broken
		// /Annots is Sign's to refuse.
		annots, _ := d.arrayOf(pg.dict["Annots"], "page /Annots")
		for _, a := range annots {
			if r, ok := a.(ref); ok && w.annot[r.num] == 0 {
				w.annot[r.num] = i + 1
			}
		}
	}
	for _, pg := range pages {
		if done[pg.ref.num] {
			continue
		}
		done[pg.ref.num] = true
		if err := w.dict(pg.dict, pg.ref.num, 0); err != nil {
			return err
		}
	}
	type entry struct {
		num int
		xrefEntry
	}
	all := make([]entry, 0, len(d.xref))
	for num, e := range d.xref {
		// Object 0 heads the free list (§7.5.4) and never exists.
		if num > 0 && e.kind != 0 && !done[num] {
			all = append(all, entry{num, e})
		}
	}
	slices.SortFunc(all, func(a, b entry) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		if a.off != b.off {
			if a.off < b.off {
				return -1
			}
			return 1
		}
		if a.idx != b.idx {
			return a.idx - b.idx
		}
		return a.num - b.num
	})
	for _, e := range all {
		v, err := d.object(e.num)
		if err != nil {
			return err
		}
		if err := w.value(v, e.num, 0); err != nil {
			return err
		}
	}
	return nil
}

func (w *activeWalk) where(num int) string {
	switch {
	case num == w.catalog:
		return "in the catalog"
	case w.page[num] > 0:
		return fmt.Sprintf("on page %d", w.page[num])
	case w.annot[num] > 0:
		return fmt.Sprintf("in object %d, an annotation on page %d", num, w.annot[num])
	}
	return fmt.Sprintf("in object %d", num)
}

// found is the refusal of what, found in object num.
func (w *activeWalk) found(what string, num int) error {
	return fmt.Errorf("%w: %s %s", ErrActiveContent, what, w.where(num))
}

// value looks through v, part of object num, and the direct objects in
// it; references are objects of their own, which the walk reads in turn.
func (w *activeWalk) value(v any, num int, depth int) error {
	if depth > maxDepth+1 {
		// Deeper than the lexer builds.
		return malformed("objects nested deeper than %d", maxDepth)
	}
	switch v := v.(type) {
	case *stream:
		return w.dict(v.dict, num, depth)
	case dict:
		return w.dict(v, num, depth)
	case array:
		for _, e := range v {
			if err := w.value(e, num, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *activeWalk) dict(d dict, num int, depth int) error {
	if what := w.dictFinding(d); what != "" {
		return w.found(what, num)
	}
	if v, ok := d["AA"]; ok {
		aa, err := w.d.resolve(v)
		if err != nil {
			return err
		}
		if t, ok := aa.(dict); ok && len(t) > 0 {
			return w.found("/AA additional actions", num)
		}
	}
	if v, ok := d["OpenAction"]; ok {
		what, err := w.openAction(v)
		if err != nil {
			return err
		}
		if what != "" {
			return w.found(what, num)
		}
	}
	// Sorted, so that of two findings the same one is reported each time.
	var keys []name
	for k, v := range d {
		switch v.(type) {
		case dict, array:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := w.value(d[k], num, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// dictFinding names the active content d is, or "".
func (w *activeWalk) dictFinding(d dict) string {
	if s, ok := d["S"].(name); ok {
		switch {
		case activeActions[s]:
			return "/" + string(s) + " action"
		case s == "URI":
			if u, _ := d["URI"].(pdfString); !plainURI(u) {
				return "/URI action to " + uriScheme(u)
			}
		case s == "GoToE" && !w.allowEmbedded:
			return "/GoToE action into an embedded file"
		case s == "Named":
			if n, _ := d["N"].(name); !standardNamed[n] {
				return "/Named action /" + string(n)
			}
		}
	}
	if _, ok := d["JS"]; ok {
		return "/JavaScript action (/JS)"
	}
	if _, ok := d["JavaScript"]; ok {
		return "/JavaScript name tree"
	}
	if _, ok := d["XFA"]; ok {
		return "/XFA form in AcroForm"
	}
	if _, ok := d["Collection"]; ok {
		return "/Collection portfolio"
	}
	switch d["Subtype"] {
	case name("RichMedia"):
		return "/RichMedia annotation"
	case name("3D"):
		return "/3D annotation"
	}
	if !w.allowEmbedded {
		if _, ok := d["EmbeddedFiles"]; ok {
			return "/EmbeddedFiles name tree"
		}
		if _, ok := d["EF"]; ok {
			return "embedded file (/EF in a file specification)"
		}
		if d["Type"] == name("EmbeddedFile") {
			return "embedded file stream"
		}
	}
	return ""
}

// plainURI reports whether u is an absolute http, https, mailto or tel
// address.
func plainURI(u pdfString) bool {
	switch scheme(u) {
	case "http", "https", "mailto", "tel":
		return true
	}
	return false
}

// scheme is the lower-case scheme of u, or "" for a relative address.
// Like a browser, it ignores leading spaces and control characters.
func scheme(u pdfString) string {
	s := strings.TrimLeft(string(u), "\x00\t\n\f\r ")
	sch, _, ok := strings.Cut(s, ":")
	if !ok || strings.ContainsAny(sch, "/?#") {
		return ""
	}
	return strings.ToLower(sch)
}

// uriScheme describes the scheme of u for a message: `a "file:" address`.
func uriScheme(u pdfString) string {
	if s := scheme(u); s != "" {
		return fmt.Sprintf("a %q address", truncate(s+":"))
	}
	return "a relative address"
}

// openAction names what is active in the catalog's /OpenAction, or "" for
// a destination (§12.3.2) or a GoTo without /Next: those only choose
// where the letter opens.
func (w *activeWalk) openAction(v any) (string, error) {
	o, err := w.d.resolve(v)
	if err != nil {
		return "", err
	}
	switch o := o.(type) {
	case nil, array, name, pdfString:
		return "", nil
	case dict:
		s, _ := o["S"].(name)
		if s == "GoTo" && o["Next"] == nil {
			return "", nil
		}
		return "/OpenAction (/" + string(s) + " action)", nil
	}
	return "/OpenAction", nil
}
