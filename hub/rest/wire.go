package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"

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

// readJSON decodes the request body, at most maxBody bytes, into v. An
// oversized body is MessageTooLarge; anything that is not exactly one JSON
// value of the right shape is IotHubFormatError naming the problem.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return hub.Errorf(hub.CodeMessageTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return hub.Errorf(hub.CodeFormatError, "read request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return hub.Errorf(hub.CodeFormatError, "request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return hub.Errorf(hub.CodeFormatError, "invalid JSON body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return hub.Errorf(hub.CodeFormatError, "invalid JSON body: data after the JSON value")
	}
	return nil
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

// unquoteETag strips the quotes of an If-Match value: Node sends "\"*\""
// and "\"AAAAAAAAAAE=\"".
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
// default); anything else must be a positive integer.
func parsePageSize(h http.Header) (int, error) {
	v := strings.TrimSpace(h.Get(headerMaxItems))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, hub.Errorf(hub.CodeArgumentInvalid, "%s %q is not a positive integer", headerMaxItems, v)
	}
	return n, nil
}
