package hub

import (
	"strings"
	"time"
)

// Ranges of the numbers a request carries. Every number a client sends
// has one, checked before anything is stored: a number outside it is an
// ArgumentInvalid *Error that names the field and the range, never a
// value that overflows later (a deadline in the past, a timer that fires
// at once).
//
//	field (body or header)                  range                     source
//	maxExecutionTimeInSeconds               1 … MaxJobExecutionTime   ours: Azure documents no maximum
//	  (0 or absent: DefaultMaxExecutionTime)
//	startTime                               until MaxJobStartAhead    ours, see MaxJobStartAhead
//	  (its deadline startTime+max must not have passed)
//	responseTimeoutInSeconds (0: default)   MinResponseTimeout … MaxResponseTimeout   Azure
//	connectTimeoutInSeconds                 0 … MaxConnectTimeout     Azure
//	x-ms-max-item-count                     1 … MaxPageSize           the Node SDK's documented maximum
//	top (GET /devices)                      1 … 1000; Azure's swagger: any other value means 1000
//	x-iotjobs-wait (our long poll)          1 … 60 seconds
//	twin values that are whole numbers      MinTwinInteger … MaxTwinInteger   Azure (twins doc)
const (
	// MaxJobExecutionTime is the longest maxExecutionTimeInSeconds, a
	// year. Azure documents no maximum; a bound is needed because the
	// engine turns it into a time.Duration deadline, which overflows past
	// about 292 years (9,223,372,036 seconds) into a deadline already
	// passed. A year keeps startTime+max far from that for any start the
	// hub accepts, and no fleet operation needs more.
	MaxJobExecutionTime = 365 * 24 * 60 * 60
	// MaxJobStartAhead is how far in the future a job may start: a year,
	// for the same reasons (a timer of a time.Duration; RFC 3339 has
	// four-digit years, so times past 9999 could not even be stored).
	MaxJobStartAhead = 365 * 24 * time.Hour
	// MaxPageSize is the largest x-ms-max-item-count, the maximum the Node
	// SDK documents for a query page ("default: 1000, max: 10000"). Hubs
	// may answer with smaller pages; clients follow x-ms-continuation.
	MaxPageSize = 10000
	// MinTwinInteger and MaxTwinInteger bound whole numbers in tags and
	// desired and reported properties, as Azure's twin documentation
	// does (±2^52): beyond them a float64, which is how JSON numbers are
	// read, no longer holds every integer exactly.
	MinTwinInteger = -4503599627370496
	MaxTwinInteger = 4503599627370495
)

// CheckRange returns an ArgumentInvalid *Error unless min ≤ v ≤ max. The
// message has Azure's form ("responseTimeoutInSeconds must be within [5;
// 300].") followed by the value received.
func CheckRange(field string, v, min, max int64) error {
	if v < min || v > max {
		return Errorf(CodeArgumentInvalid, "%s must be within [%d; %d]. It was %d.", field, min, max, v)
	}
	return nil
}

// FieldRange returns the range of a numeric request field by its JSON
// name, or by a dotted path ending in it (encoding/json reports
// "cloudToDeviceMethod.responseTimeoutInSeconds"). A decoder uses it to
// say which range a number that did not even fit the field's type is
// outside of.
func FieldRange(field string) (min, max int64, ok bool) {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	switch field {
	case "maxExecutionTimeInSeconds":
		return 1, MaxJobExecutionTime, true
	case "responseTimeoutInSeconds":
		return MinResponseTimeout, MaxResponseTimeout, true
	case "connectTimeoutInSeconds":
		return 0, MaxConnectTimeout, true
	}
	return 0, 0, false
}

// CheckMethodRequest checks a direct-method request's numbers and payload
// size against Azure's limits: responseTimeoutInSeconds 0 (the default,
// DefaultResponseTimeout) or MinResponseTimeout to MaxResponseTimeout,
// connectTimeoutInSeconds 0 to MaxConnectTimeout, payload at most
// MaxMethodPayload bytes. It does not check the method name, whose rules
// are the device protocol's.
func CheckMethodRequest(r *MethodRequest) error {
	if r == nil {
		return Errorf(CodeArgumentInvalid, "method request is missing: send {\"methodName\": ...}")
	}
	if t := r.ResponseTimeoutInSeconds; t != 0 {
		if err := CheckRange("responseTimeoutInSeconds", int64(t), MinResponseTimeout, MaxResponseTimeout); err != nil {
			return err
		}
	}
	if err := CheckRange("connectTimeoutInSeconds", int64(r.ConnectTimeoutInSeconds), 0, MaxConnectTimeout); err != nil {
		return err
	}
	if len(r.Payload) > MaxMethodPayload {
		return Errorf(CodeMessageTooLarge, "method payload is %d bytes, more than the %d allowed", len(r.Payload), MaxMethodPayload)
	}
	return nil
}

// CheckJobTiming checks a job's maxExecutionTimeInSeconds (0 stands for
// DefaultMaxExecutionTime) and start (nil or zero: now) at now: the
// maximum within [1; MaxJobExecutionTime], the start at most
// MaxJobStartAhead after now, and the job's deadline, start plus maximum,
// not already passed, since such a job would fail before touching a
// device.
func CheckJobTiming(start *Time, maxSeconds int64, now time.Time) error {
	if maxSeconds == 0 {
		maxSeconds = DefaultMaxExecutionTime
	}
	if err := CheckRange("maxExecutionTimeInSeconds", maxSeconds, 1, MaxJobExecutionTime); err != nil {
		return err
	}
	if start == nil || start.IsZero() {
		return nil
	}
	if latest := now.Add(MaxJobStartAhead); start.After(latest) {
		return Errorf(CodeArgumentInvalid, "startTime %s is more than %d days ahead (after %s): schedule the job closer to when it should run",
			start.UTC().Format(WireTime), int(MaxJobStartAhead/(24*time.Hour)), latest.UTC().Format(WireTime))
	}
	if end := start.Add(time.Duration(maxSeconds) * time.Second); !end.After(now) {
		return Errorf(CodeArgumentInvalid, "startTime %s plus maxExecutionTimeInSeconds %d ended at %s, before now (%s): the job could never run; send a later startTime, or null to start now",
			start.UTC().Format(WireTime), maxSeconds, end.UTC().Format(WireTime), now.UTC().Format(WireTime))
	}
	return nil
}
