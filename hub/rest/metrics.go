package rest

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics counts and times REST requests by route pattern and serves them,
// with whatever else is registered on its registry (Go runtime and process
// metrics, and what the hub adds through Registerer), on /metrics. The
// zero value is ready to use and safe for concurrent use.
type Metrics struct {
	once     sync.Once
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
}

func (m *Metrics) init() {
	m.once.Do(func() {
		m.reg = prometheus.NewRegistry()
		m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotjobs_rest_requests_total",
			Help: "REST API requests by route pattern and HTTP status.",
		}, []string{"route", "code"})
		m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "iotjobs_rest_request_duration_seconds",
			Help: "REST API request duration by route pattern.",
			// From fast reads to 300 s direct methods and long-polls.
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300},
		}, []string{"route"})
		m.reg.MustRegister(m.requests, m.duration,
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	})
}

// Registerer is where other parts of the hub register their metrics, so
// they are served on the same /metrics.
func (m *Metrics) Registerer() prometheus.Registerer {
	m.init()
	return m.reg
}

// observe records one request.
func (m *Metrics) observe(route string, status int, d time.Duration) {
	m.init()
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// ServeHTTP serves the metrics in the Prometheus exposition format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.init()
	m.handler.ServeHTTP(w, r)
}
