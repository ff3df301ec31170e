package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub"
)

// Headers and values of the wire contract.
const (
	contentTypeJSON = "application/json; charset=utf-8"
	apiVersion      = "2021-04-12"

	headerMaxItems     = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
	headerItemType     = "x-ms-item-type"

	// Our long-poll extension of job GETs.
	headerWait  = "x-iotjobs-wait"
	headerState = "x-iotjobs-state"

	// maxBody bounds request bodies; the largest legitimate one is a
	// direct method with a 128 KB payload.
	maxBody = 256 << 10
	// maxWait bounds the long-poll wait in seconds.
	maxWait = 60
)

// writeJSON writes v as a JSON response with Azure's content type, which
// the Node SDK needs to parse the body at all.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only unmarshalable values from the Hub land here; say so
		// rather than sending half a document.
		status = http.StatusInternalServerError
		w.Header().Set(headerErrorCode, hub.CodeServerError)
		b, _ = json.Marshal(shapeAErrorBody{Message: "ErrorCode:" + hub.CodeServerError + ";encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeArray writes items as a bare JSON array ("[]" when empty).
func writeArray(w http.ResponseWriter, items []json.RawMessage) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// readJSON decodes the request body, at most maxBody bytes, into v, the
// one body reader of every route. An oversized body is MessageTooLarge.
// The body must be exactly one JSON value of the kind v is: an object for
// a struct or map, an array for a slice. Anything else, null included, is
// IotHubFormatError naming the problem, and v is left as it was: encoding/
// json would decode null (or a body of the wrong kind that it skips) as
// "nothing", which a PUT would then store as an empty twin or device. A
// number outside the range of a known field (hub.FieldRange) is
// ArgumentInvalid naming the range, as an in-range but wrong value is.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkContentType(r.Header); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return hub.Errorf(hub.CodeMessageTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return hub.Errorf(hub.CodeFormatError, "read request body: %v", err)
	}
	return decodeBody(body, v)
}

// decodeBody is readJSON after reading: the checks and the decoding of a
// whole body, apart so that fuzzing reaches it without HTTP.
func decodeBody(body []byte, v any) error {
	want := bodyKind(v)
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return hub.Errorf(hub.CodeFormatError, "request body is empty: send a JSON %s", want.name)
	}
	if want.open != 0 && trimmed[0] != want.open {
		return hub.Errorf(hub.CodeFormatError, "request body is %s, not a JSON %s: send a JSON %s", jsonKind(trimmed), want.name, want.name)
	}
	if !utf8.Valid(body) {
		return hub.Errorf(hub.CodeFormatError, "request body is not valid UTF-8 (at byte %d): send JSON in UTF-8", invalidUTF8At(body))
	}
	if err := checkDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		if e := numberRangeError(err); e != nil {
			return e
		}
		return hub.Errorf(hub.CodeFormatError, "invalid JSON body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return hub.Errorf(hub.CodeFormatError, "invalid JSON body: data after the JSON value")
	}
	return nil
}

// checkContentType refuses a body declared as something other than JSON
// in UTF-8 (a form, text, XML, JSON in UTF-16): it would be read as what
// it is not. No Content-Type at all is read as JSON.
func checkContentType(h http.Header) error {
	ct := h.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return hub.Errorf(hub.CodeFormatError, "Content-Type %q is malformed: send %s", ct, contentTypeJSON)
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return hub.Errorf(hub.CodeFormatError, "Content-Type %q is not JSON: send %s", ct, contentTypeJSON)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return hub.Errorf(hub.CodeFormatError, "Content-Type %q: the hub reads JSON in UTF-8 only: send %s", ct, contentTypeJSON)
	}
	return nil
}

// invalidUTF8At is the offset of the first byte of b that is not valid
// UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// checkDuplicateKeys refuses a body in which one object has the same key
// twice: encoding/json keeps the last, another reader the first, so such
// a body means different things to different parsers. It only walks a
// body that is valid JSON; the decoder reports the rest.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// One frame per open object or array: the keys seen in an object,
	// nil for an array.
	var stack []map[string]bool
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error the decoder reports
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, map[string]bool{})
				expectKey = true
				continue
			case '[':
				stack = append(stack, nil)
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if expectKey {
				keys := stack[len(stack)-1]
				if keys[t] {
					return hub.Errorf(hub.CodeFormatError, "invalid JSON body: key %q appears twice in one object (offset %d): send each key once", truncate(t, 64), dec.InputOffset())
				}
				keys[t] = true
				expectKey = false
				continue
			}
		}
		// After a value: inside an object the next token is a key.
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// kind is the JSON kind a body must have: its opening byte (0: any) and
// its name for messages.
type kind struct {
	open byte
	name string
}

// bodyKind is the JSON kind that decodes into v, a pointer.
func bodyKind(v any) kind {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return kind{name: "value"}
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return kind{'{', "object"}
	case reflect.Slice, reflect.Array:
		return kind{'[', "array"}
	}
	return kind{name: "value"}
}

// jsonKind names the kind of the JSON value that b starts with.
func jsonKind(b []byte) string {
	switch c := b[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return "not JSON"
}

// numberRangeError turns a number that did not fit its field (too large
// for an int64, or not whole) into the ArgumentInvalid of that field's
// range, when the field has one; otherwise nil.
func numberRangeError(err error) error {
	te, ok := errors.AsType[*json.UnmarshalTypeError](err)
	if !ok || !strings.HasPrefix(te.Value, "number") {
		return nil
	}
	min, max, ok := hub.FieldRange(te.Field)
	if !ok {
		return nil
	}
	got := strings.TrimSpace(strings.TrimPrefix(te.Value, "number"))
	return hub.Errorf(hub.CodeArgumentInvalid, "%s must be within [%d; %d]. It was %s.", te.Field, min, max, got)
}

// describeJSONError names the field and offset of a decoding error where
// encoding/json knows them.
func describeJSONError(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		return fmt.Sprintf("field %q: expected %s, got JSON %s (offset %d)", te.Field, te.Type, te.Value, te.Offset)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%v (offset %d)", se, se.Offset)
	}
	if he, ok := errors.AsType[*hub.Error](err); ok {
		return he.Message
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return err.Error()
}

// ifMatch reads the If-Match header, which Node sends quoted ("\"*\"",
// "\"AAAAAAAAAAE=\""): absent is ("", false); present, it must be one
// etag as hub.ParseETag reads them, returned unquoted ("*" for the
// wildcard). An empty, repeated or malformed If-Match is ArgumentInvalid:
// taken as absent, it would make a guarded update unconditional (or a PUT
// of a device a create).
func ifMatch(r *http.Request) (string, bool, error) {
	vs, ok := r.Header[http.CanonicalHeaderKey("If-Match")]
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", true, hub.Errorf(hub.CodeArgumentInvalid, "If-Match is sent %d times: send it once, with \"*\" or the etag you read", len(vs))
	}
	et, err := hub.ParseETag(vs[0])
	if err != nil {
		return "", true, hub.Errorf(hub.CodeArgumentInvalid, "If-Match header: %s", hub.ErrorMessage(err))
	}
	return et, true, nil
}

// unquoteETag strips the quotes of an etag: Node sends "\"*\"" and
// "\"AAAAAAAAAAE=\"".
func unquoteETag(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

// quoteETag is the If-Match value for etag: the quoted wildcard when etag
// is empty, as the Node SDK sends it.
func quoteETag(etag string) string {
	etag = unquoteETag(etag)
	if etag == "" {
		etag = "*"
	}
	return `"` + etag + `"`
}

// stateToken is a short opaque token for what WatchJob waits to change:
// the job's status and statistics. Equal tokens mean hub.SameJobState.
func stateToken(j *hub.Job) string {
	if j == nil {
		return ""
	}
	s := string(j.Status)
	if j.EndTime != nil {
		s += "|ended" // a cancelled job ends after its calls in flight
	}
	if st := j.DeviceJobStatistics; st != nil {
		s += fmt.Sprintf("|%d,%d,%d,%d,%d", st.DeviceCount, st.FailedCount, st.SucceededCount, st.RunningCount, st.PendingCount)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return strconv.FormatUint(h.Sum64(), 36)
}

// parsePageSize reads x-ms-max-item-count: absent is 0 (the hub's
// default); anything else must be a whole number from 1 to
// hub.MaxPageSize.
func parsePageSize(h http.Header) (int, error) {
	v := strings.TrimSpace(h.Get(headerMaxItems))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, hub.Errorf(hub.CodeArgumentInvalid, "%s %q is not a whole number: send 1 to %d", headerMaxItems, v, hub.MaxPageSize)
	}
	if err != nil || n < 1 || n > hub.MaxPageSize {
		return 0, hub.Errorf(hub.CodeArgumentInvalid, "%s must be within [1; %d]. It was %s.", headerMaxItems, hub.MaxPageSize, v)
	}
	return int(n), nil
}
