package rest

import (
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// Server serves a hub.Client as Azure IoT Hub's service REST API. The zero
// value is not usable: set Hub and Authorize, then call Handler.
type Server struct {
	// Hub answers every request. Required.
	Hub hub.Client
	// Authorize checks a request's credentials; an error answers 401
	// IotHubUnauthorizedAccess with the error's text. Required: without
	// it every request but /healthz and /metrics is refused. See
	// SASAuthorizer.
	Authorize func(r *http.Request) error
	// Logger defaults to slog.Default() with "system"="rest".
	Logger *slog.Logger
	// Metrics counts requests by route and status and times them; it is
	// served on /metrics. nil means a private one.
	Metrics *Metrics
	// Ready, when set, says whether the hub can do its work now (nil) or
	// why not: /healthz answers 503 with the reason meanwhile (a
	// readiness probe), while /livez answers 200 as long as the process
	// serves (a liveness probe).
	Ready func() error
	// Endpoints, when set, is served on GET /iotjobs/endpoints (our
	// extension, authenticated like the API): where devices connect, so
	// that `iotjobs simulate` needs only the connection string.
	Endpoints *Endpoints

	once    sync.Once
	handler http.Handler
	log     *slog.Logger
}

// handlerFunc is a route's handler: it writes the success response itself
// and returns errors for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler returns the HTTP handler of the API. It is built once; later
// calls return the same handler.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.build)
	return s.handler
}

func (s *Server) build() {
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.Default().With("system", "rest")
	}
	if s.Metrics == nil {
		s.Metrics = &Metrics{}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.Ready != nil {
			if err := s.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error()))
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("GET /metrics", s.Metrics)
	routes := map[string]handlerFunc{
		"PUT /devices/{id}":         s.putDevice,
		"GET /devices":              s.listDevices,
		"GET /devices/{$}":          s.listDevices, // the Node SDK's list
		"POST /devices":             s.importDevices,
		"GET /statistics/devices":   s.deviceStatistics,
		"PUT /twins/{id}":           s.putTwin,
		"GET /devices/{id}":         s.getDevice,
		"DELETE /devices/{id}":      s.deleteDevice,
		"GET /twins/{id}":           s.getTwin,
		"PATCH /twins/{id}":         s.patchTwin,
		"POST /twins/{id}/methods":  s.invokeMethod,
		"POST /devices/query":       s.query,
		"PUT /jobs/v2/{id}":         s.putJob,
		"GET /jobs/v2/{id}":         s.getJob,
		"POST /jobs/v2/{id}/cancel": s.cancelJob,
		"GET /jobs/v2/query":        s.queryJobs,
		"GET /iotjobs/endpoints":    s.endpoints,
		"GET /iotjobs/audit":        s.audit,
		"/":                         s.notFound,
	}
	maps.Copy(routes, s.moduleRoutes())
	maps.Copy(routes, s.certificateRoutes())
	for pattern, h := range routes {
		mux.Handle(pattern, s.authorized(h))
	}
	s.handler = s.instrument(mux)
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts and times requests by the mux pattern that served
// them, which keeps the label set bounded whatever paths clients send.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.Metrics.observe(route, sw.status, elapsed)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", elapsed, "request_id", r.Header.Get("Request-Id"))
	})
}

// authorized runs Authorize before h and hands h's error to writeError.
func (s *Server) authorized(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch {
		case s.Authorize == nil:
			err = hub.Errorf(hub.CodeUnauthorized, "the server has no authorizer configured")
		case s.Hub == nil:
			err = hub.Errorf(hub.CodeServiceUnavailable, "the server has no hub configured")
		default:
			if aerr := s.Authorize(r); aerr != nil {
				err = hub.Errorf(hub.CodeUnauthorized, "%v", aerr)
			}
		}
		if err == nil {
			r = r.WithContext(hub.WithActor(r.Context(), actorOf(r)))
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			if hub.ErrorCode(err) == hub.CodeServerError {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err, time.Now())
		}
	})
}

// Endpoints says where a hub's device endpoints are.
type Endpoints struct {
	// MQTT is the host:port of the MQTT-over-TLS listener.
	MQTT string `json:"mqtt,omitempty"`
	// Broker is the URL of the external broker the hub runs on, if it
	// does: devices connect there, with device-scoped topics.
	Broker string `json:"broker,omitempty"`
}

func (s *Server) endpoints(w http.ResponseWriter, r *http.Request) error {
	if s.Endpoints == nil {
		return s.notFound(w, r)
	}
	writeJSON(w, http.StatusOK, s.Endpoints)
	return nil
}

// notFound answers requests no route matches. A request for an Azure
// IoT Hub API this hub leaves out says which one, so that a developer
// porting code sees at once why.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error {
	if api := unimplementedAPI(r.URL.Path); api != "" {
		return &routeError{msg: r.Method + " " + r.URL.Path + " is Azure IoT Hub's " + api + ", which this hub does not implement (docs/azure-contract.md lists what it does)"}
	}
	return &routeError{msg: "no such API: " + r.Method + " " + r.URL.Path}
}

// unimplementedAPIs are the Azure IoT Hub service APIs this hub leaves
// out, by path prefix and segment (docs/azure-contract.md).
var unimplementedAPIs = []struct{ prefix, contains, name string }{
	{"/configurations", "", "automatic device management API (/configurations)"},
	{"/jobs/create", "", "import/export jobs API (blob storage)"},
	{"/jobs", "", "import/export jobs API (blob storage)"},
	{"/messages/", "", "cloud-to-device messaging API (it runs over AMQP)"},
	{"/digitaltwins/", "", "digital twin (IoT Plug and Play) API"},
	{"/devices/", "/files", "file upload API"},
	{"/twins/", "/streams/", "device streams API"},
	{"/statistics/service", "", "service statistics API"},
}

func unimplementedAPI(path string) string {
	for _, u := range unimplementedAPIs {
		if strings.HasPrefix(path, u.prefix) && strings.Contains(path[len(u.prefix):], u.contains) {
			if u.prefix == "/jobs" && strings.HasPrefix(path, "/jobs/v2/") {
				continue
			}
			return u.name
		}
	}
	return ""
}
