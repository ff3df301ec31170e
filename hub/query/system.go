package query

import "strings"

// SystemField reports whether name is a top-level system field of a twin,
// module twin or device-job record (deviceId, status, jobId, ...), matched
// case-insensitively, and returns its canonical spelling. Stores that
// compile paths use it to resolve a first segment exactly as [Resolve]
// does.
func SystemField(name string) (canonical string, ok bool) {
	canonical, ok = systemFields[strings.ToLower(name)]
	return canonical, ok
}
