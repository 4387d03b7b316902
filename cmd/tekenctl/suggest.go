package main

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// suggest returns the one name of names that typed is most likely a typo
// of, or "": the single closest by edit distance, when it is at most 2
// edits and fewer than half of typed's letters; failing that, the single
// name typed is a prefix of ("--term" for --terminal).
func suggest(typed string, names []string) string {
	const maxTyped = 64 // a longer word is no typo of a flag or command
	if typed == "" || len(typed) > maxTyped {
		return ""
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	best, bestDist, tie := "", 0, false
	var prefixed []string
	for _, n := range sorted {
		if n == typed {
			continue
		}
		if len(typed) >= 2 && strings.HasPrefix(n, typed) {
			prefixed = append(prefixed, n)
		}
		d := editDistance(typed, n)
		switch {
		case best == "" || d < bestDist:
			best, bestDist, tie = n, d, false
		case d == bestDist:
			tie = true
		}
	}
	if best != "" && !tie && bestDist <= 2 && 2*bestDist < len([]rune(typed)) {
		return best
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// undefinedFlag is how the flag package begins the error for a flag fs
// does not define (flag.go, failf in parseOne).
const undefinedFlag = "flag provided but not defined: -"

// flagError is the flag package's error, with the flag the user most
// likely meant when the error is about one that does not exist.
func flagError(fs *flag.FlagSet, err error) string {
	typed, ok := strings.CutPrefix(err.Error(), undefinedFlag)
	if !ok {
		return err.Error()
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := suggest(typed, names); s != "" {
		return fmt.Sprintf("%v (did you mean %s?)", err, dashed(s))
	}
	return err.Error()
}

// dashed writes a flag name as the help does: -v, --verbose.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
