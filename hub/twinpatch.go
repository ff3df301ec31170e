package hub

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Twin section bookkeeping keys: "$metadata" holds the last-update tree and
// "$version" the section version (desired and reported only).
const (
	metaKey            = "$metadata"
	versionKey         = "$version"
	lastUpdated        = "$lastUpdated"
	lastUpdatedVersion = "$lastUpdatedVersion"
)

// MergeSection applies a JSON merge patch to one twin section (tags, desired
// or reported) in place, maintaining Azure's "$metadata" tree inside the
// section: every touched leaf and every object on its path gets
// {"$lastUpdated": now} (and "$lastUpdatedVersion": version when
// withVersion, i.e. desired); a null deletes the key and its metadata;
// objects merge recursively; other values replace. A leaf set to the value
// it already has is not touched. Keys starting with '$' in the patch are
// rejected (they are read-only), and the section is then left unchanged.
// It returns whether anything changed.
func MergeSection(section map[string]any, patch map[string]any, now time.Time, version int64, withVersion bool) (bool, error) {
	if err := checkPatch(patch, ""); err != nil {
		return false, err
	}
	if section == nil {
		return false, Errorf(CodeServerError, "twin section to patch is nil")
	}
	s := stamp{at: now.UTC().Format(WireTime), version: version, withVersion: withVersion}
	meta, _ := section[metaKey].(map[string]any)
	fresh := meta == nil
	if fresh {
		meta = map[string]any{}
	}
	changed := mergeObject(section, meta, patch, s)
	if changed {
		s.apply(meta)
		if fresh {
			section[metaKey] = meta
		}
	}
	return changed, nil
}

// stamp is the metadata one patch writes.
type stamp struct {
	at          string
	version     int64
	withVersion bool
}

// apply writes the stamp into a metadata node, keeping its children.
func (s stamp) apply(node map[string]any) {
	node[lastUpdated] = s.at
	if s.withVersion {
		node[lastUpdatedVersion] = s.version
	}
}

func (s stamp) leaf() map[string]any {
	n := map[string]any{}
	s.apply(n)
	return n
}

// mergeObject merges patch into target, keeping meta (the metadata node of
// target) in step, and reports whether target changed.
func mergeObject(target, meta, patch map[string]any, s stamp) bool {
	changed := false
	for k, pv := range patch {
		if pv == nil {
			if _, ok := target[k]; ok {
				delete(target, k)
				delete(meta, k)
				changed = true
			}
			continue
		}
		if pobj, ok := pv.(map[string]any); ok {
			tobj, isObj := target[k].(map[string]any)
			mnode, hasMeta := meta[k].(map[string]any)
			created := !isObj
			if created {
				// A new key, or a scalar replaced by an object: RFC 7386
				// merges the patch into an empty object.
				tobj, mnode = map[string]any{}, map[string]any{}
				target[k] = tobj
			} else if !hasMeta {
				mnode = map[string]any{}
			}
			if mergeObject(tobj, mnode, pobj, s) || created {
				s.apply(mnode)
				meta[k] = mnode
				changed = true
			}
			continue
		}
		if old, ok := target[k]; ok && jsonEqual(old, pv) {
			continue
		}
		target[k] = deepCopy(pv)
		meta[k] = s.leaf()
		changed = true
	}
	return changed
}

// checkPatch rejects '$' keys and values that are not JSON anywhere in a
// patch, before anything is changed.
func checkPatch(v any, path string) error {
	switch v := v.(type) {
	case map[string]any:
		// In key order, so that a patch with several faults is always
		// refused for the same one.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := joinPath(path, k)
			if strings.HasPrefix(k, "$") {
				return Errorf(CodeArgumentInvalid, "property %q is read-only: names starting with '$' cannot be written", p)
			}
			if err := checkPatch(v[k], p); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkPatch(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case nil, bool, string, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, json.Number:
	default:
		return Errorf(CodeArgumentInvalid, "property %q: value of type %T is not JSON", path, v)
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonEqual compares two JSON values, numbers by value whatever their Go
// type.
func jsonEqual(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// deepCopy copies maps and slices so a section never shares them with a
// patch or a caller.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// StripMeta returns a deep copy of a section without "$metadata" and
// "$version" (what the device protocol's twin GET and desired
// notifications carry, plus "$version" added by callers).
func StripMeta(section map[string]any) map[string]any {
	out := make(map[string]any, len(section))
	for k, v := range section {
		if k == metaKey || k == versionKey {
			continue
		}
		out[k] = deepCopy(v)
	}
	return out
}

// Twin limits (Azure IoT Hub's, README "The hub").
const (
	maxKeyBytes     = 1024
	maxStringBytes  = 4096
	maxDepth        = 10
	maxSectionBytes = 32 * 1024
	maxTagsBytes    = 8 * 1024
)

// CheckLimits validates a section against Azure's twin limits: keys ≤ 1 KB
// without '.', '$', ' ' or control characters, object depth ≤ 10, string
// values ≤ 4 KB, whole numbers within [MinTwinInteger; MaxTwinInteger],
// and section size ≤ 32 KB (tags 8 KB), the size being the
// sum over properties of key length plus value length (strings without
// control characters, numbers 8, booleans 4, objects recursively). The
// section's own "$metadata" and "$version" are not counted. It returns an
// *Error with CodeArgumentInvalid or CodeMessageTooLarge whose message names
// the offending key path.
func CheckLimits(kind string, section map[string]any) error {
	prefix, limit := "properties."+kind, maxSectionBytes
	switch kind {
	case "tags":
		prefix, limit = "tags", maxTagsBytes
	case "desired", "reported":
	default:
		return Errorf(CodeServerError, "unknown twin section kind %q", kind)
	}
	top := make(map[string]any, len(section))
	for k, v := range section {
		if k != metaKey && k != versionKey {
			top[k] = v
		}
	}
	size, err := checkValue(top, prefix, 0)
	if err != nil {
		return err
	}
	if size > limit {
		return Errorf(CodeMessageTooLarge, "%s is %d bytes, over the limit of %d bytes; remove or shorten properties", prefix, size, limit)
	}
	return nil
}

// checkValue checks v at path, an object or array at depth (the section
// itself being depth 0), and returns its size.
func checkValue(v any, path string, depth int) (int, error) {
	switch v := v.(type) {
	case map[string]any:
		if depth > maxDepth {
			return 0, Errorf(CodeArgumentInvalid, "%s is nested more than %d objects deep", path, maxDepth)
		}
		size := 0
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := path + "." + k
			if err := checkKey(k, p); err != nil {
				return 0, err
			}
			n, err := checkValue(v[k], p, depth+1)
			if err != nil {
				return 0, err
			}
			size += len(k) + n
		}
		return size, nil
	case []any:
		if depth > maxDepth {
			return 0, Errorf(CodeArgumentInvalid, "%s is nested more than %d objects deep", path, maxDepth)
		}
		size := 0
		for i, e := range v {
			n, err := checkValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return 0, err
			}
			size += n
		}
		return size, nil
	case string:
		if len(v) > maxStringBytes {
			return 0, Errorf(CodeArgumentInvalid, "%s: string value is %d bytes, over the limit of %d", path, len(v), maxStringBytes)
		}
		n := 0
		for _, r := range v {
			if !isControl(r) {
				n += utf8.RuneLen(r)
			}
		}
		return n, nil
	case bool:
		return 4, nil
	case nil:
		return 0, nil
	default:
		f, ok := toFloat(v)
		if !ok {
			return 0, Errorf(CodeArgumentInvalid, "%s: value of type %T is not JSON", path, v)
		}
		if f == math.Trunc(f) && (f < MinTwinInteger || f > MaxTwinInteger) {
			return 0, Errorf(CodeArgumentInvalid, "%s: %v is outside the range of whole numbers a twin holds, [%d; %d]; send it as a string",
				path, v, int64(MinTwinInteger), int64(MaxTwinInteger))
		}
		return 8, nil
	}
}

// CheckPatch validates a patch of one twin section, "tags" or "desired",
// on its own, before it reaches any twin: what MergeSection refuses ('$'
// keys, values that are not JSON), then CheckLimits of the patch applied
// to an empty section. Every twin the patch can produce holds that much
// (a merge keeps each non-null key of the patch, at the same depth), so a
// patch that fails here fails on every device. A twin PATCH runs it
// before merging and a scheduleUpdateTwin job when it is created, so both
// answer the same error for the same patch, and a job that could only
// fail is refused instead of failing device by device.
func CheckPatch(kind string, patch map[string]any) error {
	if err := checkPatch(patch, ""); err != nil {
		return err
	}
	if err := CheckLimits(kind, withoutNulls(patch)); err != nil {
		return err
	}
	// The names of deleted keys too: no twin holds such a key, so a patch
	// that names one is a mistake, not a delete.
	prefix := "properties." + kind
	if kind == "tags" {
		prefix = kind
	}
	return checkNullKeys(patch, prefix)
}

// checkNullKeys runs checkKey on the keys whose value is null, which
// CheckLimits of the patch without them does not see.
func checkNullKeys(patch map[string]any, path string) error {
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		switch v := patch[k].(type) {
		case nil:
			if err := checkKey(k, path+"."+k); err != nil {
				return err
			}
		case map[string]any:
			if err := checkNullKeys(v, path+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

// withoutNulls is a patch applied to an empty section: its object members
// that are null left out, recursively (arrays are values and stay whole).
func withoutNulls(patch map[string]any) map[string]any {
	out := make(map[string]any, len(patch))
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
		case map[string]any:
			out[k] = withoutNulls(v)
		default:
			out[k] = v
		}
	}
	return out
}

func checkKey(k, path string) error {
	switch {
	case k == "":
		return Errorf(CodeArgumentInvalid, "%s: property names cannot be empty", path)
	case len(k) > maxKeyBytes:
		return Errorf(CodeArgumentInvalid, "%s: property name is %d bytes, over the limit of %d", path, len(k), maxKeyBytes)
	case !utf8.ValidString(k):
		return Errorf(CodeArgumentInvalid, "%q: property name is not valid UTF-8", path)
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == ' ' || isControl(r) {
			return Errorf(CodeArgumentInvalid, "%q: property names cannot contain %q ('.', '$', spaces and control characters are not allowed)", path, r)
		}
	}
	return nil
}

// isControl reports C0 and C1 control characters (and DEL).
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// MergePlain applies a JSON merge patch (RFC 7386: null deletes, an object
// merges key by key, anything else replaces) to dst, with no metadata
// (tags have none; a device's own view of its reported properties
// neither). It changes dst's own keys only: a nested object is copied
// before it is changed, so a shallow copy of dst never sees a change.
func MergePlain(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			cur, ok := dst[k].(map[string]any)
			if ok {
				cur = maps.Clone(cur)
			} else {
				cur = make(map[string]any, len(pv))
			}
			MergePlain(cur, pv)
			dst[k] = cur
		default:
			dst[k] = v
		}
	}
}
