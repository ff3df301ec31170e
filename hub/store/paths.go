package store

import "slices"

// OutermostPaths drops from paths every path that another one covers (a
// prefix of it, or the same path earlier in the list), keeping the order:
// fetching the outer value fetches what is inside it.
func OutermostPaths(paths [][]string) [][]string {
	var out [][]string
	for i, p := range paths {
		covered := false
		for j, o := range paths {
			if (len(o) < len(p) || len(o) == len(p) && j < i) && len(o) <= len(p) && slices.Equal(p[:len(o)], o) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}
