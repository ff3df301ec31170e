package hubd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// The contract fuzzer: every REST route and every field of its body come
// from one table of the contract's types (contractRoutes); a generator
// turns each into malformed requests (wrong types, null, empty, huge,
// nested, out of range, control characters, duplicate keys, wrong content
// type, oversize, bad ids, bad headers, bad credentials), deterministic
// ones first and then random combinations of them. Every request is sent
// to a live hub, and every answer must be a 4xx with Azure's error body
// and iothub-errorcode header; afterwards the registry, the twins and the
// jobs must be exactly as they were.

// kind is a contract type of a field.
type kind int

const (
	kText     kind = iota // a string the route requires (a method name)
	kDeviceID             // a device id (hub.CheckDeviceID); "" means "the path's"
	kJobID                // a job id (hub.CheckJobID); "" means "the path's"
	kInt                  // a whole number within [min; max]
	kBool
	kEnum    // one of enum
	kKey     // base64 of 16 to 64 bytes ("" means "generate one")
	kETag    // "*" or a quoted token
	kReason  // a status reason of at most hub.MaxStatusReason characters
	kTwinMap // a twin section patch (tags, desired)
	kPayload // any JSON of at most hub.MaxMethodPayload bytes
	kQuery   // a query of the IoT Hub query language
	kWhere   // a job's queryCondition: "*" or a WHERE condition
	kObject  // an object of sub fields
	kStartAt // a job's startTime (RFC 3339): within a year, and not so early that its deadline passed
)

// field is one member of a request body in the contract's table.
type field struct {
	name     string
	kind     kind
	valid    string // the JSON of a valid value, in the base body
	required bool   // absent, null (and "" for strings) is refused
	min, max int64  // kInt
	enum     []string
	sub      []field // kObject
}

// route is one REST route in the contract's table, with a valid request
// for it: path ids that exist (or, for creates, do not), base headers and
// a base body. The base is never sent; every request sent is the base
// with at least one mutation that the contract refuses.
type route struct {
	name      string
	method    string
	path      string // with {id} where the id goes
	id        kind   // kDeviceID or kJobID for routes with {id}
	validID   string
	header    http.Header
	body      []field // nil: the route takes no body
	array     bool    // the body is an array of body objects (bulk)
	query     map[string][]string
	methodErr bool // errors in Shape B (direct methods)
}

var (
	sasAuth = []field{
		{name: "type", kind: kEnum, valid: `"sas"`, enum: []string{"sas"}},
		{name: "symmetricKey", kind: kObject, sub: []field{
			{name: "primaryKey", kind: kKey, valid: `"` + fixedKey + `"`},
			{name: "secondaryKey", kind: kKey, valid: `"` + fixedKey + `"`},
		}},
	}
	deviceBody = func(id string) []field {
		return []field{
			{name: "deviceId", kind: kDeviceID, valid: `"` + id + `"`},
			{name: "status", kind: kEnum, valid: `"disabled"`, enum: []string{"enabled", "disabled"}},
			{name: "statusReason", kind: kReason, valid: `"fuzz"`},
			{name: "authentication", kind: kObject, sub: sasAuth},
			{name: "capabilities", kind: kObject, sub: []field{{name: "iotEdge", kind: kBool, valid: "false"}}},
		}
	}
	twinBody = []field{
		{name: "deviceId", kind: kDeviceID, valid: `"dev1"`},
		{name: "tags", kind: kTwinMap, valid: `{"fuzz":{"x":1}}`},
		{name: "properties", kind: kObject, sub: []field{{name: "desired", kind: kTwinMap, valid: `{"fuzz":"on"}`}}},
	}
	moduleBody = func(id string) []field {
		return []field{
			{name: "deviceId", kind: kDeviceID, valid: `"dev1"`},
			{name: "moduleId", kind: kDeviceID, valid: `"` + id + `"`},
			{name: "authentication", kind: kObject, sub: sasAuth},
		}
	}
	methodBody = []field{
		{name: "methodName", kind: kText, valid: `"reboot"`, required: true},
		{name: "payload", kind: kPayload, valid: `{"delay":1}`},
		{name: "responseTimeoutInSeconds", kind: kInt, valid: "30", min: hub.MinResponseTimeout, max: hub.MaxResponseTimeout},
		{name: "connectTimeoutInSeconds", kind: kInt, valid: "0", min: 0, max: hub.MaxConnectTimeout},
	}
	jobBody = func(typ string, op field) []field {
		return []field{
			{name: "jobId", kind: kJobID, valid: `"fz-job"`},
			{name: "type", kind: kEnum, valid: `"` + typ + `"`, enum: []string{typ}, required: true},
			{name: "queryCondition", kind: kWhere, valid: `"tags.site = 'A'"`, required: true},
			{name: "startTime", kind: kStartAt, valid: `null`},
			{name: "maxExecutionTimeInSeconds", kind: kInt, valid: "3600", min: 0, max: hub.MaxJobExecutionTime},
			op,
		}
	}
	bulkEntry = []field{
		{name: "id", kind: kDeviceID, valid: `"fz-bulk"`, required: true},
		{name: "importMode", kind: kEnum, valid: `"create"`, required: true,
			enum: []string{"create", "createOrUpdate", "update", "updateIfMatchETag", "delete", "deleteIfMatchETag"}},
		{name: "status", kind: kEnum, valid: `"enabled"`, enum: []string{"enabled", "disabled"}},
		{name: "statusReason", kind: kReason, valid: `"fuzz"`},
		{name: "eTag", kind: kETag, valid: `"*"`},
		{name: "authentication", kind: kObject, sub: sasAuth},
	}
)

// fixedKey is a valid device key for base bodies.
const fixedKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

var (
	ifMatchAny = http.Header{"If-Match": {`"*"`}}
	// contractRoutes is the table: every route of the REST API.
	contractRoutes = []route{
		{name: "create device", method: "PUT", path: "/devices/{id}", id: kDeviceID, validID: "fz-new", body: deviceBody("fz-new")},
		{name: "update device", method: "PUT", path: "/devices/{id}", id: kDeviceID, validID: "dev1", header: ifMatchAny, body: deviceBody("dev1")},
		{name: "get device", method: "GET", path: "/devices/{id}", id: kDeviceID, validID: "dev1"},
		{name: "delete device", method: "DELETE", path: "/devices/{id}", id: kDeviceID, validID: "dev3", header: ifMatchAny},
		{name: "list devices", method: "GET", path: "/devices", query: map[string][]string{"top": {"5"}}},
		{name: "bulk", method: "POST", path: "/devices", body: bulkEntry, array: true},
		{name: "device statistics", method: "GET", path: "/statistics/devices"},
		{name: "get twin", method: "GET", path: "/twins/{id}", id: kDeviceID, validID: "dev1"},
		{name: "patch twin", method: "PATCH", path: "/twins/{id}", id: kDeviceID, validID: "dev1", header: ifMatchAny, body: twinBody},
		{name: "patch twin, etag in body", method: "PATCH", path: "/twins/{id}", id: kDeviceID, validID: "dev1",
			body: append([]field{{name: "etag", kind: kETag, valid: `"*"`}}, twinBody...)},
		{name: "replace twin", method: "PUT", path: "/twins/{id}", id: kDeviceID, validID: "dev1", header: ifMatchAny, body: twinBody},
		{name: "replace twin, etag in body", method: "PUT", path: "/twins/{id}", id: kDeviceID, validID: "dev1",
			body: append([]field{{name: "etag", kind: kETag, valid: `"*"`}}, twinBody...)},
		{name: "direct method", method: "POST", path: "/twins/{id}/methods", id: kDeviceID, validID: "dev1", body: methodBody, methodErr: true},
		{name: "device query", method: "POST", path: "/devices/query", body: []field{{name: "query", kind: kQuery, valid: `"SELECT * FROM devices"`, required: true}}},
		{name: "create method job", method: "PUT", path: "/jobs/v2/{id}", id: kJobID, validID: "fz-job",
			body: jobBody(string(hub.JobDeviceMethod), field{name: "cloudToDeviceMethod", kind: kObject, required: true, sub: methodBody})},
		{name: "create twin job", method: "PUT", path: "/jobs/v2/{id}", id: kJobID, validID: "fz-job",
			body: jobBody(string(hub.JobUpdateTwin), field{name: "updateTwin", kind: kObject, required: true, sub: []field{
				{name: "etag", kind: kETag, valid: `"*"`},
				{name: "tags", kind: kTwinMap, valid: `{"fuzz":1}`},
				{name: "properties", kind: kObject, sub: []field{{name: "desired", kind: kTwinMap, valid: `{"fuzz":"on"}`}}},
			}})},
		// Module routes: {id} is the module id (the device id alphabet).
		{name: "create module", method: "PUT", path: "/devices/dev1/modules/{id}", id: kDeviceID, validID: "fz-mod", body: moduleBody("fz-mod")},
		{name: "update module", method: "PUT", path: "/devices/dev1/modules/{id}", id: kDeviceID, validID: "seeded", header: ifMatchAny, body: moduleBody("seeded")},
		{name: "get module", method: "GET", path: "/devices/dev1/modules/{id}", id: kDeviceID, validID: "seeded"},
		{name: "delete module", method: "DELETE", path: "/devices/dev1/modules/{id}", id: kDeviceID, validID: "seeded", header: ifMatchAny},
		{name: "list modules", method: "GET", path: "/devices/{id}/modules", id: kDeviceID, validID: "dev1"},
		{name: "get module twin", method: "GET", path: "/twins/dev1/modules/{id}", id: kDeviceID, validID: "seeded"},
		{name: "patch module twin", method: "PATCH", path: "/twins/dev1/modules/{id}", id: kDeviceID, validID: "seeded", header: ifMatchAny, body: twinBody},
		{name: "replace module twin", method: "PUT", path: "/twins/dev1/modules/{id}", id: kDeviceID, validID: "seeded", header: ifMatchAny, body: twinBody},
		{name: "module method", method: "POST", path: "/twins/dev1/modules/{id}/methods", id: kDeviceID, validID: "seeded", body: methodBody, methodErr: true},
		{name: "get job", method: "GET", path: "/jobs/v2/{id}", id: kJobID, validID: "seeded"},
		{name: "cancel job", method: "POST", path: "/jobs/v2/{id}/cancel", id: kJobID, validID: "seeded"},
		{name: "query jobs", method: "GET", path: "/jobs/v2/query", query: map[string][]string{"jobType": {"scheduleDeviceMethod"}, "jobStatus": {"scheduled"}}},
	}
)

// request is one request to send: a route's base with mutations applied.
type request struct {
	route  *route
	what   []string // the mutations, for messages
	method string
	path   string // escaped
	query  map[string][]string
	header http.Header
	body   *node  // nil: no body (or raw)
	raw    []byte // the body, when a mutation replaced it whole
	hasRaw bool
}

// node is a body under construction: an object with ordered members, an
// array of nodes, or a raw JSON text.
type node struct {
	keys  []string
	vals  map[string]*node
	items []*node
	array bool
	raw   string
}

func (n *node) clone() *node {
	if n == nil {
		return nil
	}
	c := &node{keys: slices.Clone(n.keys), array: n.array, raw: n.raw}
	if n.vals != nil {
		c.vals = map[string]*node{}
		for k, v := range n.vals {
			c.vals[k] = v.clone()
		}
	}
	for _, it := range n.items {
		c.items = append(c.items, it.clone())
	}
	return c
}

func (n *node) write(b *bytes.Buffer) {
	switch {
	case n.array:
		b.WriteByte('[')
		for i, it := range n.items {
			if i > 0 {
				b.WriteByte(',')
			}
			it.write(b)
		}
		b.WriteByte(']')
	case n.vals != nil:
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			n.vals[k].write(b)
		}
		b.WriteByte('}')
	default:
		b.WriteString(n.raw)
	}
}

// object builds the base body of fields.
func object(fields []field) *node {
	n := &node{vals: map[string]*node{}}
	for _, f := range fields {
		v := &node{raw: f.valid}
		if f.kind == kObject {
			v = object(f.sub)
		}
		if v.vals == nil && v.raw == "" {
			continue
		}
		n.keys = append(n.keys, f.name)
		n.vals[f.name] = v
	}
	return n
}

// set replaces the member at path (nil v: removes it), adding it when
// absent.
func (n *node) set(path []string, v *node) {
	if len(path) == 1 {
		k := path[0]
		if v == nil {
			n.keys = slices.DeleteFunc(n.keys, func(s string) bool { return s == k })
			delete(n.vals, k)
			return
		}
		if _, ok := n.vals[k]; !ok {
			n.keys = append(n.keys, k)
		}
		n.vals[k] = v
		return
	}
	child := n.vals[path[0]]
	if child == nil || child.vals == nil {
		child = &node{vals: map[string]*node{}}
		n.keys = append(n.keys, path[0])
		n.vals[path[0]] = child
	}
	child.set(path[1:], v)
}

func (r *request) bodyBytes() []byte {
	if r.hasRaw {
		return r.raw
	}
	if r.body == nil {
		return nil
	}
	var b bytes.Buffer
	r.body.write(&b)
	return b.Bytes()
}

// target is the object that field mutations edit: the body, or the first
// entry of a bulk array.
func (r *request) target() *node {
	if r.body == nil {
		return nil
	}
	if r.body.array {
		return r.body.items[0]
	}
	return r.body
}

func base(rt *route) *request {
	r := &request{route: rt, method: rt.method, header: rt.header.Clone(), query: rt.query}
	if r.header == nil {
		r.header = http.Header{}
	}
	r.path = strings.Replace(rt.path, "{id}", rt.validID, 1)
	if rt.body != nil {
		r.body = object(rt.body)
		if rt.array {
			r.body = &node{array: true, items: []*node{r.body}}
		}
		r.header.Set("Content-Type", "application/json; charset=utf-8")
	}
	return r
}

// mutation turns a request into one the contract refuses.
type mutation struct {
	name  string
	apply func(r *request)
}

// escapeID percent-encodes every byte of an id that is not unreserved, as
// a client must to put it in a path.
func escapeID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// badIDs are ids no route may accept: control characters, non-ASCII,
// punctuation outside the alphabet, too long. Job ids also refuse % # ?.
func badIDs(rng *rand.Rand, k kind) []string {
	ids := []string{"a\x00b", "a\x01b", "a\nb", "a\x7fb", "\x1f", "é", "a\u200bb", "a b", "a<b", "a\"b", "a\\b", "a{b}", "a|b", "a^b", "a`b", "a[b]", "a~b", "a&b",
		strings.Repeat("d", hub.MaxIDLength+1), strings.Repeat("x", 1000+rng.IntN(3000))}
	if k == kJobID {
		ids = append(ids, "a%b", "a#b", "a?b")
	}
	// A random id with one bad byte at a random place.
	for range 3 {
		id := []byte(strings.Repeat("k", 1+rng.IntN(40)))
		bad := byte(rng.IntN(0x20))
		if rng.IntN(2) == 0 {
			bad = byte(0x80 + rng.IntN(0x80))
		}
		id[rng.IntN(len(id))] = bad
		ids = append(ids, string(id))
	}
	return ids
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// invalidValues are JSON values that a field of kind f refuses.
func invalidValues(rng *rand.Rand, f field) []string {
	var vs []string
	wrong := map[kind][]string{
		kText: {`5`, `true`, `{}`, `[]`, `1.5`}, kDeviceID: {`5`, `true`, `{}`, `["dev1"]`}, kJobID: {`5`, `false`, `{}`, `[]`},
		kInt: {`"5"`, `true`, `{}`, `[]`, `"abc"`, `1.5`}, kBool: {`"true"`, `1`, `{}`, `[]`},
		kStartAt: {`5`, `true`, `{}`, `[]`, `""`, `"tomorrow"`, `"2026-02-30T00:00:00Z"`, `"2026-13-45T00:00:00Z"`, `"10000-01-01T00:00:00Z"`, `"2000-01-01T00:00:00Z"`,
			quote(time.Now().AddDate(2, 0, 0).UTC().Format(time.RFC3339)), `"9999-12-31T23:59:59Z"`},
		kEnum:   {`5`, `true`, `{}`, `[]`, `"bogus"`, `" ` + strings.Trim(f.valid, `"`) + `"`},
		kKey:    {`5`, `{}`, `"AAAA"`, `"not base64!"`, quote(strings.Repeat("QUFB", 30))},
		kETag:   {`5`, `{}`, `"\"a\"b\""`, `"a b"`, `"a,b"`, `"é"`, quote(strings.Repeat("e", hub.MaxETagLength+1)), `"a\u0001"`},
		kReason: {`5`, `{}`, `[]`, quote(strings.Repeat("r", hub.MaxStatusReason+1))},
		kTwinMap: {`"x"`, `5`, `true`, `[1]`, `{"$x":1}`, `{"a.b":1}`, `{"a b":1}`, `{"a\u0001":1}`, `{"":1}`,
			`{"n":4503599627370496}`, `{"n":-1e300}`, `{"s":` + quote(strings.Repeat("s", 4097)) + `}`,
			`{"` + strings.Repeat("k", 1025) + `":1}`, deep(11 + rng.IntN(40)), bigSection(33 * 1024)},
		kPayload: {`{"p":` + quote(strings.Repeat("p", hub.MaxMethodPayload)) + `}`},
		kQuery: {`5`, `{}`, `[]`, `true`, `"SELEC * FROM devices"`, `"SELECT * FROM devices WHERE"`, `"SELECT * FROM devices WHERE tags.a = "`,
			`"SELECT * FROM devices WHERE (tags.a = 1"`, `"SELECT * FROM devices WHERE tags.a = 'x"`, `"SELECT * FROM nowhere"`, `"SELECT * FROM devices\u0000"`},
		kWhere:  {`5`, `{}`, `[]`, `"tags.a = "`, `"(tags.a = 1"`, `"tags.a = 'x"`, `"SELECT * FROM devices"`, `"tags.a = 1\u0001"`, `"tags.a ==== 1"`},
		kObject: {`"x"`, `5`, `true`, `[]`},
	}
	vs = append(vs, wrong[f.kind]...)
	switch f.kind {
	case kDeviceID, kJobID:
		for _, id := range badIDs(rng, f.kind) {
			vs = append(vs, quote(id))
		}
	case kInt:
		vs = append(vs, strconv.FormatInt(f.min-1, 10), strconv.FormatInt(f.max+1, 10), strconv.FormatInt(f.min-1-rng.Int64N(1<<40), 10),
			strconv.FormatInt(f.max+1+rng.Int64N(1<<40), 10), "9223372036854775808", "-9223372036854775809", "1e30", "-1e30", "1e400")
	case kEnum:
		vs = append(vs, quote(randomWord(rng)))
	}
	if f.required {
		vs = append(vs, "null")
		switch f.kind {
		case kText, kEnum, kQuery, kWhere, kDeviceID:
			vs = append(vs, `""`, `"   "`)
		}
	}
	// The kinds whose "" means "default" accept it, and the rest's
	// wrong-type lists already hold it.
	return vs
}

func randomWord(rng *rand.Rand) string {
	b := make([]byte, 1+rng.IntN(12))
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return "zz" + string(b)
}

// deep is a twin section nested n objects deep.
func deep(n int) string {
	return `{` + strings.Repeat(`"d":{`, n) + `"leaf":1` + strings.Repeat(`}`, n) + `}`
}

// bigSection is a twin section of more than n bytes of properties.
func bigSection(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"%s"`, i, strings.Repeat("v", 1000))
	}
	b.WriteByte('}')
	return b.String()
}

// mutations are every refused variant of a route: its path ids, its
// headers, its body as a whole, and each field of its body.
func mutations(rng *rand.Rand, rt *route) []mutation {
	var ms []mutation
	if rt.id != 0 {
		for _, id := range badIDs(rng, rt.id) {
			ms = append(ms, mutation{"path id " + strconv.QuoteToASCII(short(id)), func(r *request) {
				r.path = strings.Replace(rt.path, "{id}", escapeID(id), 1)
			}})
		}
	}
	if rt.header.Get("If-Match") != "" {
		for _, v := range []string{``, `""`, `"a"b"`, `W/"x"`, `a, b`, "\"a\tb\"", strings.Repeat("e", 200)} {
			ms = append(ms, mutation{"If-Match " + strconv.QuoteToASCII(short(v)), func(r *request) { r.header.Set("If-Match", v) }})
		}
		ms = append(ms, mutation{"If-Match twice", func(r *request) { r.header["If-Match"] = []string{`"*"`, `"*"`} }})
	}
	// Query parameters: top must be a whole number, the job filters one
	// of Azure's values.
	for name := range rt.query {
		for _, bad := range []string{"abc", "1.5", "--1", "0x10", "1e3"} {
			ms = append(ms, mutation{"query " + name + "=" + bad, func(r *request) {
				r.query = maps.Clone(r.query)
				r.query[name] = []string{bad}
			}})
		}
	}
	if rt.path == "/devices/query" || rt.path == "/jobs/v2/query" {
		for _, v := range []string{"0", "-1", "abc", "10001", "1e3", "99999999999999999999"} {
			ms = append(ms, mutation{"x-ms-max-item-count " + v, func(r *request) { r.header.Set("x-ms-max-item-count", v) }})
		}
		for _, v := range []string{"garbage", "!!!", "eyJ4Ijp9", strings.Repeat("A", 300)} {
			ms = append(ms, mutation{"x-ms-continuation " + short(v), func(r *request) { r.header.Set("x-ms-continuation", v) }})
		}
	}
	if rt.name == "get job" {
		for _, v := range []string{"-1", "61", "abc", "1e9"} {
			ms = append(ms, mutation{"x-iotjobs-wait " + v, func(r *request) {
				r.header.Set("x-iotjobs-wait", v)
				r.header.Set("x-iotjobs-state", "x")
			}})
		}
	}
	// Credentials, on every route.
	ms = append(ms,
		mutation{"no Authorization", func(r *request) { r.header.Set("Authorization", "") }},
		mutation{"garbage Authorization", func(r *request) { r.header.Set("Authorization", "SharedAccessSignature sr=x&sig=y&se=1&skn=z") }},
		mutation{"Authorization not SAS", func(r *request) { r.header.Set("Authorization", "Bearer abc") }},
	)
	if rt.body == nil {
		return ms
	}
	// The body as a whole.
	open, close, kindName := "{", "}", "object"
	if rt.array {
		open, close, kindName = "[", "]", "array"
	}
	for _, b := range []string{"", " ", "null", "0", "-1", `"x"`, "true", "{", "[", "]", open + `"`, "{} {}", "[] []", `{"a":1,}`, `[1,]`, "\xff\xfe", "{\"a\":\"\xff\"}"} {
		ms = append(ms, mutation{"body " + strconv.QuoteToASCII(short(b)), func(r *request) { r.raw, r.hasRaw = []byte(b), true }})
	}
	if kindName == "object" {
		ms = append(ms, mutation{"body is an array", func(r *request) { r.raw, r.hasRaw = []byte("["+string(r.bodyBytes())+"]"), true }})
	} else {
		ms = append(ms,
			mutation{"body is an object", func(r *request) { r.raw, r.hasRaw = r.target().bytes(), true }},
			mutation{"empty bulk", func(r *request) { r.raw, r.hasRaw = []byte("[]"), true }},
			mutation{"bulk of 101", func(r *request) {
				e := string(r.target().bytes())
				r.raw, r.hasRaw = []byte("["+strings.TrimSuffix(strings.Repeat(e+",", hub.MaxImportDevices+1), ",")+"]"), true
			}},
			mutation{"null entry", func(r *request) { r.body.items = append(r.body.items, &node{raw: "null"}) }},
			mutation{"scalar entry", func(r *request) { r.body.items = append(r.body.items, &node{raw: "7"}) }},
		)
	}
	ms = append(ms,
		mutation{"truncated body", func(r *request) {
			// Only a body built from the table: a cut of a raw one ("{} {}")
			// may be valid.
			if b := r.bodyBytes(); !r.hasRaw && len(b) >= 2 {
				r.raw, r.hasRaw = b[:1+rng.IntN(len(b)-1)], true
			}
		}},
		mutation{"trailing garbage", func(r *request) { r.raw, r.hasRaw = append(r.bodyBytes(), " x"...), true }},
		mutation{"a second value", func(r *request) {
			if !r.hasRaw { // "" and a second value is one value
				r.raw, r.hasRaw = append(r.bodyBytes(), " "+open+close...), true
			}
		}},
		mutation{"duplicate key", func(r *request) {
			t := r.target()
			if len(t.keys) == 0 {
				t.set([]string{"dup"}, &node{raw: "1"})
			}
			k := t.keys[rng.IntN(len(t.keys))]
			t.keys = append(t.keys, k)
		}},
		mutation{"oversize", func(r *request) {
			b := r.bodyBytes()
			pad := strings.Repeat(" ", 256<<10+1+rng.IntN(64<<10))
			i := min(1, len(b))
			r.raw, r.hasRaw = append(append([]byte{}, b[:i]...), append([]byte(pad), b[i:]...)...), true
		}},
		mutation{"nested past any parser's depth", func(r *request) {
			t := r.target()
			t.keys = append(t.keys, "zdeep")
			t.vals["zdeep"] = &node{raw: strings.Repeat("[", 10001) + strings.Repeat("]", 10001)}
		}},
		mutation{"raw control character", func(r *request) {
			b := r.bodyBytes()
			i := bytes.IndexByte(b, '"') + 1 // inside the first string, or first
			r.raw, r.hasRaw = append(append(append([]byte{}, b[:i]...), 0x01), b[i:]...), true
		}},
	)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "application/json; charset=utf-16", "multipart/form-data; boundary=x", "application/json; charset", "json"} {
		ms = append(ms, mutation{"Content-Type " + ct, func(r *request) { r.header.Set("Content-Type", ct) }})
	}
	// Each field.
	var walk func(prefix []string, fs []field)
	walk = func(prefix []string, fs []field) {
		for _, f := range fs {
			path := append(slices.Clone(prefix), f.name)
			name := strings.Join(path, ".")
			for _, v := range invalidValues(rng, f) {
				ms = append(ms, mutation{name + " = " + short(v), func(r *request) { r.target().set(path, &node{raw: v}) }})
			}
			if f.required {
				ms = append(ms, mutation{name + " absent", func(r *request) { r.target().set(path, nil) }})
			}
			if f.kind == kObject {
				walk(path, f.sub)
			}
		}
	}
	walk(nil, rt.body)
	return ms
}

func (n *node) bytes() []byte {
	var b bytes.Buffer
	n.write(&b)
	return b.Bytes()
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// contractHub is a live hub seeded with the state the base requests
// name: dev1 (with tags and desired properties), dev2, dev3, and the job
// "seeded", scheduled a day ahead so that it stays scheduled.
func contractHub(ctx context.Context, t *testing.T) (base string, web *http.Client, tok string, snapshot func() string) {
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	c := h.Client()
	for _, id := range []string{"dev1", "dev2", "dev3"} {
		_, err := c.CreateDevice(ctx, &hub.Device{DeviceID: id})
		must(t, "create "+id, err)
	}
	_, err := c.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"site": "A"}, Properties: &hub.Properties{Desired: map[string]any{"fw": "1.0"}}}, "*")
	must(t, "seed twin", err)
	_, err = c.(hub.Modules).CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "seeded"})
	must(t, "seed module", err)
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "seeded", Type: hub.JobDeviceMethod, QueryCondition: "*",
		StartTime: &hub.Time{Time: time.Now().Add(24 * time.Hour)}, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m"}})
	must(t, "seed job", err)
	waitJobStatus(ctx, t, c, "seeded", hub.JobScheduled)
	cs, err := sas.ParseConnectionString(h.ConnectionString())
	must(t, "connection string", err)
	tok, err = sas.ServiceToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	must(t, "token", err)
	web = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, h)}, MaxIdleConnsPerHost: 8}}
	snapshot = func() string {
		var b strings.Builder
		ds, err := c.ListDevices(ctx, 1000)
		must(t, "list devices", err)
		for _, d := range ds {
			j, _ := json.Marshal(d)
			b.Write(j)
			b.WriteByte('\n')
		}
		for _, q := range []string{"SELECT * FROM devices", "SELECT * FROM devices.modules"} {
			res, err := c.Query(ctx, q, hub.QueryOptions{})
			must(t, "query twins", err)
			for _, it := range res.Items {
				b.Write(it)
				b.WriteByte('\n')
			}
		}
		jobs, _, err := c.QueryJobs(ctx, hub.JobQuery{})
		must(t, "query jobs", err)
		for _, j := range jobs {
			jb, _ := json.Marshal(j)
			b.Write(jb)
			b.WriteByte('\n')
		}
		return b.String()
	}
	return "https://" + h.HTTPAddr(), web, tok, snapshot
}

// TestContractFuzz sends every deterministic mutation of every route and
// then random combinations of them, up to IOTJOBS_CONTRACT_REQUESTS
// (3,000 by default) from the seed IOTJOBS_CONTRACT_SEED (1 by default;
// "random" draws one), to a
// live hub: every answer is a 4xx with Azure's error body and header, and
// the hub's state is unchanged.
func TestContractFuzz(t *testing.T) {
	total := 3000
	if v, err := strconv.Atoi(os.Getenv("IOTJOBS_CONTRACT_REQUESTS")); err == nil && v > 0 {
		total = v
	}
	// A fixed seed by default, so that CI's verdict is about the hub;
	// IOTJOBS_CONTRACT_SEED=random draws one (logged, to rerun it).
	seed := uint64(1)
	if v := os.Getenv("IOTJOBS_CONTRACT_SEED"); v == "random" {
		seed = uint64(time.Now().UnixNano())
	} else if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		seed = n
	}
	t.Logf("seed %d (rerun with IOTJOBS_CONTRACT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := testCtx(t, 5*time.Minute)
	baseURL, web, tok, snapshot := contractHub(ctx, t)
	before := snapshot()

	var reqs []*request
	perRoute := make([][]mutation, len(contractRoutes))
	for i := range contractRoutes {
		rt := &contractRoutes[i]
		perRoute[i] = mutations(rng, rt)
		for _, m := range perRoute[i] {
			r := base(rt)
			m.apply(r)
			r.what = []string{m.name}
			reqs = append(reqs, r)
		}
	}
	// Unknown routes and methods.
	for _, p := range [][2]string{{"GET", "/nope"}, {"DELETE", "/twins/dev1"}, {"POST", "/devices/dev1"}, {"PATCH", "/jobs/v2/seeded"}, {"GET", "/jobs/v2"}, {"PUT", "/statistics/devices"}} {
		reqs = append(reqs, &request{route: &route{name: "unknown route"}, what: []string{p[0] + " " + p[1]}, method: p[0], path: p[1], header: http.Header{}})
	}
	deterministic := len(reqs)
	for len(reqs) < total {
		i := rng.IntN(len(contractRoutes))
		r := base(&contractRoutes[i])
		for range 1 + rng.IntN(3) {
			m := perRoute[i][rng.IntN(len(perRoute[i]))]
			m.apply(r)
			r.what = append(r.what, m.name)
		}
		reqs = append(reqs, r)
	}
	t.Logf("%d requests: %d deterministic, %d random combinations", len(reqs), deterministic, len(reqs)-deterministic)

	var (
		mu       sync.Mutex
		failures []string
		statuses = map[int]int{}
	)
	work := make(chan *request)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				status, problem := send(ctx, web, baseURL, tok, r)
				mu.Lock()
				statuses[status]++
				if problem != "" {
					failures = append(failures, fmt.Sprintf("%s %s [%s]: %s", r.route.name, strings.Join(r.what, " + "), r.method, problem))
				}
				mu.Unlock()
			}
		}()
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	t.Logf("answers by status: %v", statuses)
	for i, f := range failures {
		if i == 30 {
			t.Errorf("… and %d more", len(failures)-30)
			break
		}
		t.Error(f)
	}
	if after := snapshot(); after != before {
		t.Errorf("the hub's state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// send sends r and checks its answer: a 4xx, iothub-errorcode, a JSON
// content type and Azure's error body carrying the same code. It returns
// the status and what is wrong ("" when nothing is).
func send(ctx context.Context, web *http.Client, baseURL, tok string, r *request) (int, string) {
	u := baseURL + r.path
	q := []string{}
	for k, vs := range r.query {
		for _, v := range vs {
			q = append(q, k+"="+escapeID(v))
		}
	}
	slices.Sort(q)
	q = append(q, "api-version=2021-04-12")
	u += "?" + strings.Join(q, "&")
	body := r.bodyBytes()
	req, err := http.NewRequestWithContext(ctx, r.method, u, bytes.NewReader(body))
	if err != nil {
		return 0, "build request: " + err.Error()
	}
	req.Header = r.header.Clone()
	if _, set := req.Header["Authorization"]; !set {
		req.Header.Set("Authorization", tok)
	} else if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
	}
	resp, err := web.Do(req)
	if err != nil {
		return 0, "no answer (did the hub crash?): " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		return resp.StatusCode, fmt.Sprintf("status %d, want 4xx: %s", resp.StatusCode, short(string(b)))
	}
	code := resp.Header.Get("iothub-errorcode")
	if code == "" {
		return resp.StatusCode, "no iothub-errorcode header"
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return resp.StatusCode, "Content-Type " + ct
	}
	var e struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
		return resp.StatusCode, "error body is not Azure's: " + short(string(b))
	}
	if strings.HasPrefix(e.Message, "ErrorCode:") {
		if !strings.HasPrefix(e.Message, "ErrorCode:"+code+";") {
			return resp.StatusCode, fmt.Sprintf("body says %s, header %s", short(e.Message), code)
		}
		return resp.StatusCode, ""
	}
	// Shape B: the direct-method errors.
	var inner struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	if !r.route.methodErr || json.Unmarshal([]byte(e.Message), &inner) != nil || inner.ErrorCode == 0 || inner.Message == "" {
		return resp.StatusCode, "error body is not Azure's: " + short(string(b))
	}
	return resp.StatusCode, ""
}
