package memstore

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// The store keeps devices as Go values, not JSON: a dry-run reads and
// writes every twin of a large fleet many times, and a JSON round trip
// each time cost more than all the rest. Every value goes in and out as a
// deep copy that equals what a JSON round trip (the SQLite store's) would
// give: numbers as float64, times in UTC to 100 ns, invalid UTF-8
// replaced, and anything unusual through encoding/json itself.

// cloneDevice is a deep copy of d as stored: no part of it is shared.
func cloneDevice(d *store.Device) (*store.Device, error) {
	c := *d
	c.StatusReason = cloneString(d.StatusReason)
	c.Authentication.X509Thumbprint = hub.X509Thumbprint{
		PrimaryThumbprint:   cloneString(d.Authentication.X509Thumbprint.PrimaryThumbprint),
		SecondaryThumbprint: cloneString(d.Authentication.X509Thumbprint.SecondaryThumbprint),
	}
	for _, t := range []*hub.Time{&c.ConnectionStateUpdatedTime, &c.StatusUpdatedTime, &c.LastActivityTime} {
		t.Time = wireTime(t.Time)
	}
	var err error
	for _, m := range []*map[string]any{&c.Tags, &c.Desired, &c.Reported} {
		if *m, err = cloneMap(*m); err != nil {
			return nil, fmt.Errorf("device %s: %w", d.DeviceID, err)
		}
	}
	return &c, nil
}

func cloneString(p *string) *string {
	if p == nil {
		return nil
	}
	s := *p
	return &s
}

// wireTime is t as it comes back from hub.Time's JSON form.
func wireTime(t time.Time) time.Time { return t.UTC().Truncate(100 * time.Nanosecond) }

// cloneMap copies a JSON object; nil becomes empty, as stored sections
// always are.
func cloneMap(m map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		c, err := cloneValue(v)
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(k) {
			return roundTrip[map[string]any](m)
		}
		out[k] = c
	}
	return out, nil
}

func cloneValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		if !utf8.ValidString(x) {
			return roundTrip[string](x)
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("encode: json: unsupported value: %v", x)
		}
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := cloneValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	return roundTrip[any](v)
}

// roundTrip is v through encoding/json, decoded as a T.
func roundTrip[T any](v any) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("encode: %w", err)
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// cloneJob is a deep copy of j as stored (see cloneDevice). The query
// condition, which can be thousands of characters, is shared: strings do
// not change.
func cloneJob(j *hub.Job) (*hub.Job, error) {
	c := *j
	for _, t := range []**hub.Time{&c.CreatedTime, &c.StartTime, &c.EndTime} {
		if *t != nil {
			v := hub.Time{Time: wireTime((*t).Time)}
			*t = &v
		}
	}
	for _, s := range []*string{&c.QueryCondition, &c.FailureReason, &c.StatusMessage} {
		if !utf8.ValidString(*s) {
			var err error
			if *s, err = roundTrip[string](*s); err != nil {
				return nil, err
			}
		}
	}
	if j.DeviceJobStatistics != nil {
		st := *j.DeviceJobStatistics
		c.DeviceJobStatistics = &st
	}
	var err error
	if j.CloudToDeviceMethod != nil {
		m := *j.CloudToDeviceMethod
		if m.Payload, err = roundTrip[json.RawMessage](m.Payload); err != nil {
			return nil, err
		}
		c.CloudToDeviceMethod = &m
	}
	if j.UpdateTwin != nil {
		if c.UpdateTwin, err = roundTrip[*hub.TwinPatch](j.UpdateTwin); err != nil {
			return nil, err
		}
	}
	return &c, nil
}
