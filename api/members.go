package api

import (
	"encoding"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A shape is what the key walker (checkKeys) knows of the Go type a JSON
// value decodes into: enough to refuse what encoding/json would quietly
// take and the JSON Schemas refuse. encoding/json reads null, and an absent
// member, as the zero value; the schemas want every member without
// omitempty present and no member null. It also takes any time
// time.Parse takes, which is more than RFC 3339 (golang.org/issue/54580).
type shape struct {
	kind     shapeKind
	members  map[string]shapeMember // shapeObject: the struct's members by JSON name
	required []string               // shapeObject: members without omitempty, in field order
	elem     *shape                 // shapeArray: the elements
}

type shapeKind uint8

const (
	shapeScalar shapeKind = iota // a string, number or bool: nothing more to know
	shapeObject                  // a struct
	shapeArray                   // a slice or array, []byte excepted
	shapeTime                    // a time.Time: an RFC 3339 string
	shapeBytes                   // a []byte: a standard base64 string
)

type shapeMember struct {
	shape    *shape
	required bool // no omitempty: the member must be present
}

// opaqueShape stands for a value whose JSON form this package does not know (an
// interface, a map, a type with its own UnmarshalJSON): nothing is checked
// inside it.
var opaqueShape = &shape{kind: shapeScalar}

var (
	timeGoType     = reflect.TypeFor[time.Time]()
	unmarshalerTyp = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshTyp = reflect.TypeFor[encoding.TextUnmarshaler]()
	shapeCache     sync.Map // reflect.Type → *shape
)

// shapeOf returns the shape of the value m points to, built once per type.
func shapeOf(m any) *shape {
	t := reflect.TypeOf(m)
	if t == nil {
		return opaqueShape
	}
	if s, ok := shapeCache.Load(t); ok {
		return s.(*shape)
	}
	s, _ := shapeCache.LoadOrStore(t, buildShape(t, map[reflect.Type]*shape{}))
	return s.(*shape)
}

// buildShape follows encoding/json's rules for which fields a struct has
// and what they are called; building maps each struct type to its shape
// while it is being built, so a recursive type ends.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeGoType:
		return &shape{kind: shapeTime}
	case reflect.PointerTo(t).Implements(unmarshalerTyp), reflect.PointerTo(t).Implements(textUnmarshTyp):
		return opaqueShape
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return &shape{kind: shapeBytes}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return &shape{kind: shapeArray, elem: buildShape(t.Elem(), building)}
	case t.Kind() == reflect.Struct:
		if s, ok := building[t]; ok {
			return s
		}
		s := &shape{kind: shapeObject, members: map[string]shapeMember{}}
		building[t] = s
		addMembers(s, t, building)
		return s
	case t.Kind() == reflect.Map || t.Kind() == reflect.Interface:
		return opaqueShape
	}
	return &shape{kind: shapeScalar}
}

// addMembers adds the fields of struct type t to s, those of an embedded
// struct without a JSON name as if they were t's own (the outer field wins,
// as in encoding/json).
func addMembers(s *shape, t reflect.Type, building map[reflect.Type]*shape) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addMembers(s, ft, building)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		// Keys on the wire are lower case (checkKeys); encoding/json matches
		// them to names case-insensitively.
		name = strings.ToLower(name)
		if _, ok := s.members[name]; ok {
			continue
		}
		optional := false
		for o := range strings.SplitSeq(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		s.members[name] = shapeMember{shape: buildShape(f.Type, building), required: !optional}
		if !optional {
			s.required = append(s.required, name)
		}
	}
}

// child returns the shape of member key of an object of shape s, or nil
// when s is not known or has no such member (an unknown member: a signed
// message refuses it when it decodes, a message from a terminal ignores
// it, and neither looks inside).
func (s *shape) child(key string) (shapeMember, bool) {
	if s == nil || s.kind != shapeObject {
		return shapeMember{}, false
	}
	m, ok := s.members[key]
	return m, ok
}

// element returns the shape of the elements of an array of shape s, or nil.
func (s *shape) element() *shape {
	if s == nil || s.kind != shapeArray {
		return nil
	}
	return s.elem
}

// kindOr returns the kind of s, or k when s is not known.
func (s *shape) kindOr(k shapeKind) shapeKind {
	if s == nil {
		return k
	}
	return s.kind
}

// rfc3339 is RFC 3339 §5.6 date-time syntax as the schemas' $defs/time
// pattern states it: two-digit fields in range, T and Z in either case,
// a fraction of any length, an offset of at most 23:59; years 2000 to 9999
// and no leap second, as checkTime and time.Parse want. The calendar (no
// 2026-02-30) is left to time.Parse, as the schemas leave it to format
// date-time.
var rfc3339 = regexp.MustCompile(`^[2-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$`)

// checkTimeSyntax refuses a time that is not RFC 3339, with a detail that
// says what is wanted.
func checkTimeSyntax(field, s string) error {
	if rfc3339.MatchString(s) {
		return nil
	}
	return refuse(ReasonMalformed, "%s %q: want an RFC 3339 time, year 2000 to 9999, two digits to each field, Z or an offset up to ±23:59, e.g. 2026-01-05T01:00:00.000Z",
		field, truncate(s))
}

// valuePath names a value for a refusal: the member path with array indices,
// documents[0].signed_at. It is a member key of the value named parent, or
// (key "") its element index; the name is only formatted when needed.
type valuePath struct {
	parent string // the enclosing value's name; "" for the message itself
	key    string
	index  int
}

func (p valuePath) String() string {
	switch {
	case p.key == "":
		return p.parent + "[" + strconv.Itoa(p.index) + "]"
	case p.parent == "":
		return p.key
	}
	return p.parent + "." + p.key
}
