package diag

import (
	"fmt"
	"strings"
)

// Suggest returns the candidate closest to name when it is a likely typo of
// it (edit distance of at most 2, ignoring case), or "" when none is. Ties
// go to the earlier candidate, so callers list the most common names first.
func Suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := levenshtein(lower, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// suggestHint returns `did you mean "x"?` for a likely typo, or a list of
// the valid names otherwise.
func suggestHint(name string, candidates []string, what string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(candidates) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s", what, strings.Join(candidates, ", "))
}

// SuggestHint is the hint for an unknown name: `did you mean "x"?` when a
// candidate is close, otherwise "valid names: a, b, c" ("" when there are no
// candidates).
func SuggestHint(name string, candidates []string) string {
	return suggestHint(name, candidates, "valid names")
}

// levenshtein is the edit distance between a and b, in runes. Names are
// short, so the quadratic algorithm with two rows is fine; very long input
// is capped so that hostile keys cannot make it expensive.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
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
