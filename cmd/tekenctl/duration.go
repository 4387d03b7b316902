package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// day is what "d" means in a duration: 24 hours, whatever the calendar
// does, since tekenctl's durations are lifetimes and waits, not dates.
const day = 24 * time.Hour

// errDurationRange says a duration is larger than time.Duration holds.
var errDurationRange = errors.New("too large (at most 106751d)")

// durationUnits are the units time.ParseDuration knows, which
// parseDuration hands to it.
var durationUnits = map[string]bool{"ns": true, "us": true, "µs": true, "μs": true, "ms": true, "s": true, "m": true, "h": true}

// parseDuration reads a duration as time.ParseDuration does ("90m",
// "1h30m", "1.5h") and also in days ("7d", "1d12h"): a job that expires in
// a week is 7d, not 168h. It refuses a negative duration, which no
// tekenctl flag takes. Its errors do not repeat s, since the flag package
// names the value already.
func parseDuration(s string) (time.Duration, error) {
	rest := strings.TrimPrefix(s, "+")
	switch {
	case rest == "":
		return 0, errors.New("empty duration (e.g. 30s, 90m, 36h, 7d)")
	case rest[0] == '-':
		return 0, errors.New("a duration cannot be negative")
	case rest == "0":
		return 0, nil
	}
	var total time.Duration
	for rest != "" {
		var num, unit string
		num, rest = leadingNumber(rest)
		unit, rest = leadingUnit(rest)
		d, err := durationTerm(num, unit)
		if err != nil {
			return 0, err
		}
		if total > math.MaxInt64-d {
			return 0, errDurationRange
		}
		total += d
	}
	return total, nil
}

// durationTerm is one number and its unit, such as "1.5" and "d".
func durationTerm(num, unit string) (time.Duration, error) {
	switch {
	case num == "" || num == ".":
		return 0, errors.New("want a number before each unit (e.g. 30s, 90m, 36h, 7d)")
	case unit == "":
		return 0, fmt.Errorf("missing unit after %s (e.g. 30s, 90m, 36h, 7d)", num)
	case unit == "d":
		h, err := time.ParseDuration(num + "h")
		if err != nil || h > math.MaxInt64/24 {
			return 0, errDurationRange
		}
		return h * 24, nil
	case !durationUnits[unit]:
		return 0, fmt.Errorf("unknown unit %q (want ns, us, ms, s, m, h or d)", unit)
	}
	d, err := time.ParseDuration(num + unit)
	if err != nil {
		// The number and unit are well formed, so only the range is left.
		return 0, errDurationRange
	}
	return d, nil
}

// leadingNumber splits off digits with at most one decimal point, as
// time.ParseDuration reads them.
func leadingNumber(s string) (num, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return s[:i], s[i:]
}

// leadingUnit splits off everything up to the next number.
func leadingUnit(s string) (unit, rest string) {
	i := 0
	for i < len(s) && s[i] != '.' && (s[i] < '0' || s[i] > '9') {
		i++
	}
	return s[:i], s[i:]
}

// formatDuration writes d the way an operator would type it ("1d",
// "1d12h", "30s"); parseDuration reads it back to the same value.
func formatDuration(d time.Duration) string {
	if d <= 0 || d%time.Second != 0 {
		return d.String()
	}
	var b strings.Builder
	for _, u := range []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.size; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.size
		}
	}
	return b.String()
}

// durationValue is a flag.Value for a duration read by parseDuration.
type durationValue struct {
	d *time.Duration
	// bare is what a number without a unit counts, for a flag that took
	// whole seconds before it took durations ("--watch 5"); zero refuses
	// such a number, which would be ambiguous.
	bare time.Duration
}

var _ flag.Getter = (*durationValue)(nil)

func (v *durationValue) Set(s string) error {
	if v.bare > 0 && s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > int64(math.MaxInt64/v.bare) {
			return errDurationRange
		}
		*v.d = time.Duration(n) * v.bare
		return nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v *durationValue) String() string {
	if v == nil || v.d == nil {
		return formatDuration(0)
	}
	return formatDuration(*v.d)
}

func (v *durationValue) Get() any { return *v.d }

// durationFlag defines a duration flag as fs.Duration does, one that also
// takes days.
func durationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := value
	fs.Var(&durationValue{d: &d}, name, usage)
	return &d
}

// stdDuration stands in for a flag defined with fs.Duration, so that it
// takes days too: it reads the value with parseDuration and hands it on in
// Go's own syntax, which the flag's Set reads back exactly.
type stdDuration struct{ flag.Getter }

func (v stdDuration) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	return v.Getter.Set(d.String())
}

func (v stdDuration) String() string {
	if v.Getter == nil {
		return formatDuration(0)
	}
	d, _ := v.Get().(time.Duration)
	return formatDuration(d)
}

// acceptDays makes every flag of fs defined with fs.Duration take days,
// as durationFlag's do: then every duration tekenctl takes reads the same,
// whichever way its command defined it.
func acceptDays(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Value.(type) {
		case *durationValue, stdDuration:
			return
		}
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		if d, ok := g.Get().(time.Duration); ok {
			// Before parsing, the value is still the default.
			f.Value, f.DefValue = stdDuration{g}, formatDuration(d)
		}
	})
}
