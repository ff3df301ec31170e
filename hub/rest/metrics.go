package rest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metrics counts and times REST requests by route pattern and serves them
// in the Prometheus text exposition format (version 0.0.4). It stands in
// for prometheus/client_golang, whose dependencies the module cannot load
// yet; the metric names are the ones a client_golang version would use.
// The zero value is ready to use and safe for concurrent use.
type Metrics struct {
	mu       sync.Mutex
	requests map[routeCode]uint64
	dur      map[string]*histogram
}

type routeCode struct{ route, code string }

// durationBuckets are the upper bounds, in seconds, of the duration
// histogram: from fast reads to 300 s direct methods.
var durationBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// observe records one request.
func (m *Metrics) observe(route string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests = map[routeCode]uint64{}
		m.dur = map[string]*histogram{}
	}
	m.requests[routeCode{route, strconv.Itoa(status)}]++
	h := m.dur[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets))}
		m.dur[route] = h
	}
	s := d.Seconds()
	if i, _ := slices.BinarySearch(durationBuckets, s); i < len(durationBuckets) {
		h.counts[i]++
	}
	h.sum += s
	h.count++
}

// ServeHTTP writes the metrics in the Prometheus text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w)
}

func (m *Metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP iotjobs_rest_requests_total REST API requests by route pattern and HTTP status.\n")
	b.WriteString("# TYPE iotjobs_rest_requests_total counter\n")
	keys := make([]routeCode, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routeCode) int {
		return strings.Compare(a.route+"\x00"+a.code, b.route+"\x00"+b.code)
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "iotjobs_rest_requests_total{route=%s,code=%s} %d\n", label(k.route), label(k.code), m.requests[k])
	}
	b.WriteString("# HELP iotjobs_rest_request_duration_seconds REST API request duration by route pattern.\n")
	b.WriteString("# TYPE iotjobs_rest_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.dur))
	for r := range m.dur {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		h := m.dur[r]
		var cum uint64
		for i, le := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "iotjobs_rest_request_duration_seconds_bucket{route=%s,le=\"%s\"} %d\n", label(r), strconv.FormatFloat(le, 'g', -1, 64), cum)
		}
		fmt.Fprintf(&b, "iotjobs_rest_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", label(r), h.count)
		fmt.Fprintf(&b, "iotjobs_rest_request_duration_seconds_sum{route=%s} %s\n", label(r), strconv.FormatFloat(h.sum, 'g', -1, 64))
		fmt.Fprintf(&b, "iotjobs_rest_request_duration_seconds_count{route=%s} %d\n", label(r), h.count)
	}
	_, _ = io.WriteString(w, b.String())
}

// label quotes a label value as the text format wants: backslash, quote
// and newline escaped.
func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}
