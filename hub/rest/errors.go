package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/iotjobs/iotjobs/hub"
)

// headerErrorCode is the response header carrying the error code name,
// which the C# SDK reads and our client falls back to.
const headerErrorCode = "iothub-errorcode"

// shapeAErrorBody is Azure's classic error body, used for everything
// except direct-method failures: Message is "ErrorCode:<Code>;<text>".
type shapeAErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// shapeBMessage is the JSON document that a Shape B body carries as a
// string in its Message field.
type shapeBMessage struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info"`
	TimestampUTC string            `json:"timestampUtc"`
}

// methodError marks an error of a direct-method invocation, which Azure
// reports with a Shape B body. Timeout is the connect timeout, reported in
// info.timeout for DeviceNotOnline as Azure does.
type methodError struct {
	err     error
	timeout time.Duration
}

func (e *methodError) Error() string { return e.err.Error() }
func (e *methodError) Unwrap() error { return e.err }

// writeError is the one place that turns an error into an HTTP response:
// the status from hub.HTTPStatus, the iothub-errorcode header, and a Shape
// B body for direct-method failures (except an unknown device or module, which Azure
// reports in Shape A) or a Shape A body for everything else. Errors that
// are not a *hub.Error become ServerError.
func writeError(w http.ResponseWriter, err error, now time.Time) {
	code, msg := hub.ErrorCode(err), hub.ErrorMessage(err)
	status := hub.HTTPStatus(code)
	if re, ok := errors.AsType[*routeError](err); ok {
		code, msg, status = codeRouteNotFound, re.msg, http.StatusNotFound
	}
	tracking := uuid.NewString()
	var body any
	if me, ok := errors.AsType[*methodError](err); ok && code != hub.CodeDeviceNotFound && code != hub.CodeModuleNotFound {
		info := map[string]string{}
		if code == hub.CodeDeviceNotOnline {
			info["timeout"] = formatTimeout(me.timeout)
		}
		inner, _ := json.Marshal(shapeBMessage{
			ErrorCode:    hub.CodeNumber(code),
			TrackingID:   tracking + "-G:0-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
			Message:      msg,
			Info:         info,
			TimestampUTC: now.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		})
		body = shapeAErrorBody{Message: string(inner)}
	} else {
		body = shapeAErrorBody{
			Message:          "ErrorCode:" + code + ";" + msg,
			ExceptionMessage: "Tracking ID:" + tracking + "-G:0-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
		}
	}
	w.Header().Set(headerErrorCode, code)
	writeJSON(w, status, body)
}

// codeRouteNotFound is the code of a request no route matches. It is not
// one of the hub's codes, as no hub.Client method returns it; the Node SDK
// turns it into an IotHubNotFoundError.
const codeRouteNotFound = "IotHubNotFound"

// routeError is a request that no route matches.
type routeError struct{ msg string }

func (e *routeError) Error() string { return codeRouteNotFound + ": " + e.msg }

// formatTimeout formats d as Azure's "hh:mm:ss".
func formatTimeout(d time.Duration) string {
	s := int(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// parseErrorBody turns an error response into a *hub.Error: a Shape B body
// (Message holding JSON with a numeric errorCode), then a Shape A body
// ("ErrorCode:<Code>;<text>"), then the iothub-errorcode header, then the
// HTTP status decide the code. Codes this module does not know fall
// through to the next source; the name Azure used stays in the message.
// jobs says whether the request was about jobs, which decides what a bare
// 404 or 409 means. A 401 is always CodeUnauthorized.
func parseErrorBody(status int, h http.Header, body []byte, jobs bool) *hub.Error {
	code, msg := "", ""
	var outer shapeAErrorBody
	if json.Unmarshal(body, &outer) == nil && outer.Message != "" {
		msg = outer.Message
		var inner struct {
			ErrorCode any    `json:"errorCode"`
			Message   string `json:"message"`
		}
		if strings.HasPrefix(strings.TrimSpace(outer.Message), "{") && json.Unmarshal([]byte(outer.Message), &inner) == nil {
			if inner.Message != "" {
				msg = inner.Message
			}
			if n, ok := numericCode(inner.ErrorCode); ok {
				if c, ok := hub.CodeFromNumber(n); ok {
					code = c
				} else {
					msg = fmt.Sprintf("%s (Azure error %d)", msg, n)
				}
			}
		} else if rest, ok := strings.CutPrefix(outer.Message, "ErrorCode:"); ok {
			name, text, _ := strings.Cut(rest, ";")
			msg = text
			if knownCode(name) {
				code = name
			} else if name != "" {
				msg = name + ": " + text
			}
		}
	}
	if code == "" && knownCode(h.Get(headerErrorCode)) {
		code = h.Get(headerErrorCode)
	}
	if code == "" {
		code = codeFromStatus(status, jobs)
	}
	if status == http.StatusUnauthorized {
		code = hub.CodeUnauthorized
		msg = strings.TrimSpace(msg + " (the hub refused the credentials: check SharedAccessKeyName and SharedAccessKey in the connection string)")
	}
	if msg == "" {
		msg = bodySnippet(status, body)
	}
	return &hub.Error{Code: code, Message: msg}
}

// numericCode reads Shape B's errorCode, a JSON number (or, defensively, a
// string of digits).
func numericCode(v any) (int, bool) {
	switch v := v.(type) {
	case float64:
		if v >= 0 && v < 1e9 && v == float64(int(v)) {
			return int(v), true
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n, true
		}
	}
	return 0, false
}

// knownCode reports whether name is one of the hub's error codes.
func knownCode(name string) bool {
	if name == "" {
		return false
	}
	c, ok := hub.CodeFromNumber(hub.CodeNumber(name))
	return ok && c == name
}

// codeFromStatus is the last resort of parseErrorBody: the code an HTTP
// status most likely means.
func codeFromStatus(status int, jobs bool) string {
	switch status {
	case http.StatusBadRequest:
		return hub.CodeGenericBadRequest
	case http.StatusUnauthorized:
		return hub.CodeUnauthorized
	case http.StatusForbidden:
		return hub.CodeQuotaExceeded
	case http.StatusNotFound:
		if jobs {
			return hub.CodeJobNotFound
		}
		return hub.CodeDeviceNotFound
	case http.StatusConflict:
		if jobs {
			return hub.CodeJobAlreadyExists
		}
		return hub.CodeDeviceAlreadyExists
	case http.StatusPreconditionFailed:
		return hub.CodePreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return hub.CodeMessageTooLarge
	case http.StatusTooManyRequests:
		return hub.CodeThrottling
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return hub.CodeServiceUnavailable
	case http.StatusGatewayTimeout:
		return hub.CodeGatewayTimeout
	}
	if status >= 400 && status < 500 {
		return hub.CodeGenericBadRequest
	}
	return hub.CodeServerError
}

// bodySnippet describes a response whose body says nothing usable: the
// status and the start of the body, printable and bounded.
func bodySnippet(status int, body []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	text := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	if s != "" {
		text += ": " + s
	}
	return text
}
