package hubd

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/engine"
)

// engineMetrics adapts the engine's measurements to Prometheus.
type engineMetrics struct {
	methods *prometheus.HistogramVec
	devices *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		methods: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "iotjobs_method_call_duration_seconds",
			Help:    "Direct-method round trips to devices (in jobs or not) by outcome: answered, or the error code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 30, 60, 300},
		}, []string{"outcome"}),
		devices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotjobs_job_device_operations_total",
			Help: "Devices that reached a final status in a job, by job type and status.",
		}, []string{"type", "status"}),
	}
	reg.MustRegister(m.methods, m.devices)
	return m
}

func (m *engineMetrics) MethodCall(outcome string, d time.Duration) {
	m.methods.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m *engineMetrics) DeviceOperation(t hub.JobType, s hub.DeviceJobStatus) {
	m.devices.WithLabelValues(string(t), string(s)).Inc()
}

// jobsCollector reports the jobs by status at each scrape.
type jobsCollector struct{ e *engine.Engine }

var jobsDesc = prometheus.NewDesc("iotjobs_jobs", "Jobs held by the hub, by status.", []string{"status"}, nil)

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.e.JobCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for _, s := range []hub.JobStatus{hub.JobQueued, hub.JobScheduled, hub.JobRunning, hub.JobCompleted, hub.JobFailed, hub.JobCancelled} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
