package rest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// startTLS serves f over TLS on 127.0.0.1 through wrap (nil: as is) and
// returns a Client that trusts the server's certificate.
func startTLS(t *testing.T, f *fakeHub, wrap func(http.Handler) http.Handler, opts Options) (*Client, *httptest.Server) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	host := ts.Listener.Addr().String()
	s := &Server{
		Hub:       f,
		Authorize: SASAuthorizer(map[string]string{testPolicy: testKey}, []string{host}, nil),
		Logger:    slog.New(slog.DiscardHandler),
	}
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts.Config.Handler = h
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-CA cases fail handshakes on purpose
	ts.StartTLS()
	t.Cleanup(ts.Close)
	if opts.RootCAs == nil && opts.HTTPClient == nil {
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		opts.RootCAs = pool
	}
	c, err := NewClient(&sas.ConnectionString{HostName: host, SharedAccessKeyName: testPolicy, SharedAccessKey: testKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, ts
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ctx context.Context, c *Client) (any, error)
		code  string // expected error code; "" for success
		check func(t *testing.T, f *fakeHub, got any)
	}{
		{name: "create device", call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateDevice(ctx, &hub.Device{DeviceID: "new#1", Authentication: hub.Authentication{Type: "sas"}})
		}, check: func(t *testing.T, f *fakeHub, got any) {
			d := got.(*hub.Device)
			if d.DeviceID != "new#1" || d.Authentication.SymmetricKey.PrimaryKey == "" || f.devices["new#1"] == nil {
				t.Errorf("device %+v", d)
			}
		}},
		{name: "create existing device", code: hub.CodeDeviceAlreadyExists, call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateDevice(ctx, &hub.Device{DeviceID: "dev1"})
		}},
		{name: "create device without id", code: hub.CodeArgumentInvalid, call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateDevice(ctx, &hub.Device{})
		}},
		{name: "get device", call: func(ctx context.Context, c *Client) (any, error) { return c.GetDevice(ctx, "dev1") },
			check: func(t *testing.T, _ *fakeHub, got any) {
				if d := got.(*hub.Device); d.DeviceID != "dev1" || d.ETag != "MQ==" {
					t.Errorf("device %+v", d)
				}
			}},
		{name: "get unknown device", code: hub.CodeDeviceNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetDevice(ctx, "zzz")
		}},
		{name: "delete device unconditionally", call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.DeleteDevice(ctx, "dev1", "")
		}, check: func(t *testing.T, f *fakeHub, _ any) {
			if f.lastEtag != "*" || f.devices["dev1"] != nil {
				t.Errorf("hub got etag %q", f.lastEtag)
			}
		}},
		{name: "delete device etag mismatch", code: hub.CodePreconditionFailed, call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.DeleteDevice(ctx, "dev1", "Mg==")
		}},
		{name: "update device unconditionally", call: func(ctx context.Context, c *Client) (any, error) {
			reason := "maintenance"
			return c.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1", Status: hub.StatusDisabled, StatusReason: &reason}, "")
		}, check: func(t *testing.T, f *fakeHub, got any) {
			d := got.(*hub.Device)
			if f.lastEtag != "*" || d.Status != hub.StatusDisabled || *d.StatusReason != "maintenance" || d.ETag != "Mg==" {
				t.Errorf("hub got etag %q; device %+v", f.lastEtag, d)
			}
		}},
		{name: "update device with etag", call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1", Status: hub.StatusEnabled}, "MQ==")
		}, check: func(t *testing.T, f *fakeHub, _ any) {
			if f.lastEtag != "MQ==" {
				t.Errorf("hub got etag %q", f.lastEtag)
			}
		}},
		{name: "update device etag mismatch", code: hub.CodePreconditionFailed, call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1"}, `"Mg=="`)
		}},
		{name: "update unknown device", code: hub.CodeDeviceNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateDevice(ctx, &hub.Device{DeviceID: "zzz"}, "*")
		}},
		{name: "update device without id", code: hub.CodeArgumentInvalid, call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateDevice(ctx, &hub.Device{}, "*")
		}},
		{name: "list devices", call: func(ctx context.Context, c *Client) (any, error) { return c.ListDevices(ctx, 2) },
			check: func(t *testing.T, f *fakeHub, got any) {
				ds := got.([]*hub.Device)
				if len(ds) != 2 || ds[0].DeviceID != "dev1" || ds[1].DeviceID != "dev2" || f.lastTop != 2 {
					t.Errorf("devices %v, hub got top %d", ds, f.lastTop)
				}
			}},
		{name: "list devices without top", call: func(ctx context.Context, c *Client) (any, error) { return c.ListDevices(ctx, 0) },
			check: func(t *testing.T, f *fakeHub, got any) {
				if ds := got.([]*hub.Device); len(ds) != 3 || f.lastTop != 0 {
					t.Errorf("devices %v, hub got top %d", ds, f.lastTop)
				}
			}},
		{name: "device statistics", call: func(ctx context.Context, c *Client) (any, error) { return c.DeviceStatistics(ctx) },
			check: func(t *testing.T, _ *fakeHub, got any) {
				if st := got.(*hub.RegistryStatistics); *st != (hub.RegistryStatistics{TotalDeviceCount: 3, EnabledDeviceCount: 3}) {
					t.Errorf("statistics %+v", st)
				}
			}},
		{name: "import devices", call: func(ctx context.Context, c *Client) (any, error) {
			return c.ImportDevices(ctx, []*hub.ImportDevice{
				{ID: "b1", ImportMode: hub.ImportCreate}, {ID: "dev1", ImportMode: hub.ImportCreate},
				{ID: "dev2", ImportMode: hub.ImportDelete, ETag: "MQ=="}})
		}, check: func(t *testing.T, f *fakeHub, got any) {
			r := got.(*hub.BulkResult)
			if r.IsSuccessful || len(r.Errors) != 1 || r.Errors[0].DeviceID != "dev1" || r.Errors[0].ErrorCode != hub.CodeDeviceAlreadyExists ||
				r.Warnings == nil || f.devices["b1"] == nil || f.devices["dev2"] != nil || f.lastImport[2].ETag != "MQ==" {
				t.Errorf("result %+v", r)
			}
		}},
		{name: "import too many devices", code: hub.CodeArgumentInvalid, call: func(ctx context.Context, c *Client) (any, error) {
			devs := make([]*hub.ImportDevice, hub.MaxImportDevices+1)
			for i := range devs {
				devs[i] = &hub.ImportDevice{ID: "d" + strconv.Itoa(i), ImportMode: hub.ImportCreate}
			}
			return c.ImportDevices(ctx, devs)
		}},
		{name: "import nothing", code: hub.CodeArgumentInvalid, call: func(ctx context.Context, c *Client) (any, error) {
			return c.ImportDevices(ctx, nil)
		}},
		{name: "replace twin", call: func(ctx context.Context, c *Client) (any, error) {
			return c.ReplaceTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"b": "2"},
				Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}}}, "AAAAAAAAAAE=")
		}, check: func(t *testing.T, f *fakeHub, got any) {
			tw := got.(*hub.Twin)
			if f.lastEtag != "AAAAAAAAAAE=" || tw.Tags["b"] != "2" || tw.Properties.Desired["fw"] != "2.0" || tw.Version != 2 {
				t.Errorf("hub got etag %q; twin %+v", f.lastEtag, tw)
			}
		}},
		{name: "replace twin wildcard", call: func(ctx context.Context, c *Client) (any, error) {
			return c.ReplaceTwin(ctx, "dev1", &hub.TwinPatch{}, "")
		}, check: func(t *testing.T, f *fakeHub, _ any) {
			if f.lastEtag != "*" {
				t.Errorf("hub got etag %q", f.lastEtag)
			}
		}},
		{name: "replace twin etag mismatch", code: hub.CodePreconditionFailed, call: func(ctx context.Context, c *Client) (any, error) {
			return c.ReplaceTwin(ctx, "dev1", &hub.TwinPatch{}, "stale")
		}},
		{name: "replace unknown twin", code: hub.CodeDeviceNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.ReplaceTwin(ctx, "zzz", &hub.TwinPatch{}, "*")
		}},
		{name: "get twin", call: func(ctx context.Context, c *Client) (any, error) { return c.GetTwin(ctx, "dev2") },
			check: func(t *testing.T, _ *fakeHub, got any) {
				if tw := got.(*hub.Twin); tw.DeviceID != "dev2" {
					t.Errorf("twin %+v", tw)
				}
			}},
		{name: "get unknown twin", code: hub.CodeDeviceNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetTwin(ctx, "zzz")
		}},
		{name: "update twin wildcard", call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"region": "EU"}}, "")
		}, check: func(t *testing.T, f *fakeHub, got any) {
			if tw := got.(*hub.Twin); f.lastEtag != "*" || tw.Tags["region"] != "EU" || tw.Version != 2 {
				t.Errorf("etag %q, twin %+v", f.lastEtag, tw)
			}
		}},
		{name: "update twin with etag", call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateTwin(ctx, "dev1", &hub.TwinPatch{}, "AAAAAAAAAAE=")
		}, check: func(t *testing.T, f *fakeHub, _ any) {
			if f.lastEtag != "AAAAAAAAAAE=" {
				t.Errorf("hub got etag %q", f.lastEtag)
			}
		}},
		{name: "update twin etag mismatch", code: hub.CodePreconditionFailed, call: func(ctx context.Context, c *Client) (any, error) {
			return c.UpdateTwin(ctx, "dev1", &hub.TwinPatch{}, "stale")
		}},
		{name: "invoke method", call: func(ctx context.Context, c *Client) (any, error) {
			return c.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":1}`)})
		}, check: func(t *testing.T, f *fakeHub, got any) {
			r := got.(*hub.MethodResponse)
			if r.Status != 200 || string(r.Payload) != `{"ok":true}` || string(f.lastMethod.Payload) != `{"delay":1}` {
				t.Errorf("response %+v %s", r, r.Payload)
			}
		}},
		{name: "invoke method offline", code: hub.CodeDeviceNotOnline, call: func(ctx context.Context, c *Client) (any, error) {
			return c.InvokeMethod(ctx, "dev2", &hub.MethodRequest{MethodName: "m"})
		}},
		{name: "invoke method no answer", code: hub.CodeGatewayTimeout, call: func(ctx context.Context, c *Client) (any, error) {
			return c.InvokeMethod(ctx, "dev3", &hub.MethodRequest{MethodName: "m"})
		}},
		{name: "invoke method unknown device", code: hub.CodeDeviceNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.InvokeMethod(ctx, "zzz", &hub.MethodRequest{MethodName: "m"})
		}},
		{name: "invoke method bad timeout", code: hub.CodeArgumentInvalid, call: func(ctx context.Context, c *Client) (any, error) {
			return c.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 1})
		}},
		{name: "query pages", call: func(ctx context.Context, c *Client) (any, error) {
			var tokens []string
			var ids []string
			opts := hub.QueryOptions{PageSize: 2}
			for range 5 {
				res, err := c.Query(ctx, "SELECT * FROM devices", opts)
				if err != nil {
					return nil, err
				}
				if res.ItemType != hub.ItemTwin {
					return nil, errors.New("item type " + res.ItemType)
				}
				for _, it := range res.Items {
					var tw hub.Twin
					if err := json.Unmarshal(it, &tw); err != nil {
						return nil, err
					}
					ids = append(ids, tw.DeviceID)
				}
				tokens = append(tokens, res.Continuation)
				if res.Continuation == "" {
					break
				}
				opts.Continuation = res.Continuation
			}
			return strings.Join(ids, ",") + "|" + strings.Join(tokens, ","), nil
		}, check: func(t *testing.T, _ *fakeHub, got any) {
			if got != "dev1,dev2,dev3|2," {
				t.Errorf("ids|tokens = %v", got)
			}
		}},
		{name: "create job", call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateJob(ctx, &hub.Job{JobID: "job;1", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'dev1'",
				CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot"}})
		}, check: func(t *testing.T, f *fakeHub, got any) {
			j := got.(*hub.Job)
			if j.JobID != "job;1" || j.Status != hub.JobQueued || j.CreatedTime == nil || f.jobs["job;1"] == nil {
				t.Errorf("job %+v", j)
			}
		}},
		{name: "create duplicate job", code: hub.CodeJobAlreadyExists, call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateJob(ctx, &hub.Job{JobID: "j1", Type: hub.JobDeviceMethod, QueryCondition: "*"})
		}},
		{name: "create job of unknown type", code: hub.CodeGenericBadRequest, call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateJob(ctx, &hub.Job{JobID: "x", Type: "export", QueryCondition: "*"})
		}},
		{name: "get job", call: func(ctx context.Context, c *Client) (any, error) { return c.GetJob(ctx, "j2") },
			check: func(t *testing.T, _ *fakeHub, got any) {
				if j := got.(*hub.Job); j.JobID != "j2" || j.UpdateTwin == nil || j.UpdateTwin.ETag != "*" {
					t.Errorf("job %+v", j)
				}
			}},
		{name: "get unknown job", code: hub.CodeJobNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetJob(ctx, "zzz")
		}},
		{name: "watch job without last is a get", call: func(ctx context.Context, c *Client) (any, error) {
			return c.WatchJob(ctx, "j1", nil)
		}, check: func(t *testing.T, _ *fakeHub, got any) {
			if j := got.(*hub.Job); j.JobID != "j1" {
				t.Errorf("job %+v", j)
			}
		}},
		{name: "watch unknown job", code: hub.CodeJobNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.WatchJob(ctx, "zzz", &hub.Job{JobID: "zzz"})
		}},
		{name: "cancel job", call: func(ctx context.Context, c *Client) (any, error) { return c.CancelJob(ctx, "j1") },
			check: func(t *testing.T, _ *fakeHub, got any) {
				if j := got.(*hub.Job); j.Status != hub.JobCancelled {
					t.Errorf("job %+v", j)
				}
			}},
		{name: "cancel unknown job", code: hub.CodeJobNotFound, call: func(ctx context.Context, c *Client) (any, error) {
			return c.CancelJob(ctx, "zzz")
		}},
		{name: "query jobs filtered", call: func(ctx context.Context, c *Client) (any, error) {
			js, next, err := c.QueryJobs(ctx, hub.JobQuery{Type: hub.JobDeviceMethod, Status: hub.JobQueued})
			if next != "" {
				t.Errorf("continuation %q on the last page", next)
			}
			return js, err
		}, check: func(t *testing.T, f *fakeHub, got any) {
			js := got.([]*hub.Job)
			if len(js) != 1 || js[0].JobID != "j1" || f.lastJobQ.Type != hub.JobDeviceMethod || f.lastJobQ.Status != hub.JobQueued {
				t.Errorf("jobs %v, hub got %+v", js, f.lastJobQ)
			}
		}},
		{name: "query jobs paged", call: func(ctx context.Context, c *Client) (any, error) {
			first, next, err := c.QueryJobs(ctx, hub.JobQuery{QueryOptions: hub.QueryOptions{PageSize: 1}})
			if err != nil {
				return nil, err
			}
			second, last, err := c.QueryJobs(ctx, hub.JobQuery{QueryOptions: hub.QueryOptions{PageSize: 1, Continuation: next}})
			if err != nil {
				return nil, err
			}
			return first[0].JobID + second[0].JobID + "|" + next + "|" + last, nil
		}, check: func(t *testing.T, _ *fakeHub, got any) {
			if got != "j2j1|1|" {
				t.Errorf("got %v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := seededHub(t)
			c, _ := startTLS(t, f, nil, Options{})
			got, err := tc.call(testCtx(t), c)
			if tc.code == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tc.code != "" {
				if he, ok := errors.AsType[*hub.Error](err); !ok || he.Code != tc.code || he.Message == "" {
					t.Fatalf("error %#v, want a *hub.Error with code %s and a message", err, tc.code)
				}
				if errors.Is(err, hub.ErrDeviceNotFound) != (tc.code == hub.CodeDeviceNotFound) {
					t.Errorf("errors.Is(%v, ErrDeviceNotFound) is wrong", err)
				}
				return
			}
			if tc.check != nil {
				f.mu.Lock()
				defer f.mu.Unlock()
				tc.check(t, f, got)
			}
		})
	}
}

// fakeClock is a clock.Clock whose timers fire only when the test says.
type fakeClock struct {
	timers chan *fakeTimer
}

type fakeTimer struct {
	d time.Duration
	c chan time.Time
}

func (f *fakeClock) Now() time.Time                  { return time.Now() }
func (f *fakeClock) Since(t time.Time) time.Duration { return time.Since(t) }
func (f *fakeClock) NewTimer(d time.Duration) clock.Timer {
	tm := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	f.timers <- tm
	return tm
}
func (f *fakeClock) AfterFunc(time.Duration, func()) clock.Timer { panic("not used") }
func (f *fakeClock) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
func (f *fakeClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, t)
}
func (t *fakeTimer) C() <-chan time.Time      { return t.c }
func (t *fakeTimer) Stop() bool               { return true }
func (t *fakeTimer) Reset(time.Duration) bool { return true }

type watchResult struct {
	job *hub.Job
	err error
}

// TestClientWatchLongPoll checks that WatchJob against our server returns
// as soon as the job changes, without polling on the clock.
func TestClientWatchLongPoll(t *testing.T) {
	f := seededHub(t)
	clk := &fakeClock{timers: make(chan *fakeTimer, 1)}
	c, _ := startTLS(t, f, nil, Options{Clock: clk})
	ctx := testCtx(t)
	last, err := c.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan watchResult, 1)
	go func() {
		j, err := c.WatchJob(ctx, "j1", last)
		done <- watchResult{j, err}
	}()
	select {
	case <-f.watching:
	case r := <-done:
		t.Fatalf("returned before the job changed: %+v", r)
	case <-ctx.Done():
		t.Fatal("server never watched")
	}
	f.setJob("j1", func(j *hub.Job) { j.DeviceJobStatistics.DeviceCount = 3 })
	select {
	case r := <-done:
		if r.err != nil || r.job.DeviceJobStatistics.DeviceCount != 3 {
			t.Fatalf("watch = %+v, %v", r.job, r.err)
		}
	case <-ctx.Done():
		t.Fatal("watch did not return after the change")
	}
	select {
	case tm := <-clk.timers:
		t.Errorf("client polled (timer %v) although the hub long-polls", tm.d)
	default:
	}
}

// TestClientWatchCancelled checks that a watch whose context ends returns
// the context's error, as the engine does: a caller looping until the job
// finishes must stop.
func TestClientWatchCancelled(t *testing.T) {
	f := seededHub(t)
	c, _ := startTLS(t, f, nil, Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	last, err := c.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan watchResult, 1)
	go func() {
		j, err := c.WatchJob(ctx, "j1", last)
		done <- watchResult{j, err}
	}()
	<-f.watching
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.job != nil {
		t.Fatalf("watch = %+v, %v; want context.Canceled", r.job, r.err)
	}
}

// azureLike hides our long-poll extension, as a real Azure IoT Hub would:
// it drops the x-iotjobs request headers and the state response header.
func azureLike(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(headerWait)
		r.Header.Del(headerState)
		next.ServeHTTP(&hideState{ResponseWriter: w}, r)
	})
}

type hideState struct{ http.ResponseWriter }

func (h *hideState) WriteHeader(code int) {
	h.Header().Del(headerState)
	h.ResponseWriter.WriteHeader(code)
}

func (h *hideState) Write(b []byte) (int, error) {
	h.Header().Del(headerState)
	return h.ResponseWriter.Write(b)
}

// TestClientWatchPolls checks that WatchJob polls on the clock, every
// PollInterval, a hub that cannot long-poll.
func TestClientWatchPolls(t *testing.T) {
	f := seededHub(t)
	clk := &fakeClock{timers: make(chan *fakeTimer)}
	c, _ := startTLS(t, f, azureLike, Options{Clock: clk, PollInterval: 7 * time.Second})
	ctx := testCtx(t)
	last, err := c.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan watchResult, 1)
	go func() {
		j, err := c.WatchJob(ctx, "j1", last)
		done <- watchResult{j, err}
	}()
	for i := range 2 {
		select {
		case tm := <-clk.timers:
			if tm.d != 7*time.Second {
				t.Errorf("poll interval %v, want 7s", tm.d)
			}
			if i == 1 {
				f.setJob("j1", func(j *hub.Job) { j.Status = hub.JobCompleted })
			}
			tm.c <- time.Now()
		case r := <-done:
			t.Fatalf("returned before the job changed: %+v %v", r.job, r.err)
		case <-ctx.Done():
			t.Fatal("client never polled")
		}
	}
	select {
	case r := <-done:
		if r.err != nil || r.job.Status != hub.JobCompleted {
			t.Fatalf("watch = %+v, %v", r.job, r.err)
		}
	case <-ctx.Done():
		t.Fatal("watch did not return after the change")
	}
	select {
	case <-f.watching:
		t.Error("server long-polled although the headers were stripped")
	default:
	}
}

func TestClientTransportErrors(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	f := seededHub(t)
	_, ts := startTLS(t, f, nil, Options{})
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	tests := []struct {
		name string
		host string
		key  string
		opts Options
		code string
		msg  string
	}{
		{name: "connection refused", host: closedAddr, key: testKey, opts: Options{RootCAs: pool},
			code: hub.CodeUnreachable, msg: "connection refused"},
		{name: "untrusted certificate", host: ts.Listener.Addr().String(), key: testKey,
			code: hub.CodeUnreachable, msg: "--ca FILE"},
		{name: "certificate for another name", host: "localhost:" + strconv.Itoa(port), key: testKey, opts: Options{RootCAs: pool},
			code: hub.CodeUnreachable, msg: "not valid for"},
		{name: "wrong key", host: ts.Listener.Addr().String(), key: testOtherKey, opts: Options{RootCAs: pool},
			code: hub.CodeUnauthorized, msg: "SharedAccessKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(&sas.ConnectionString{HostName: tc.host, SharedAccessKeyName: testPolicy, SharedAccessKey: tc.key}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetJob(testCtx(t), "j1")
			if hub.ErrorCode(err) != tc.code || !strings.Contains(hub.ErrorMessage(err), tc.msg) {
				t.Fatalf("error %v, want code %s mentioning %q", err, tc.code, tc.msg)
			}
			if !hub.IsInfrastructure(err) {
				t.Errorf("IsInfrastructure(%v) = false", err)
			}
		})
	}
}

func TestClientContextEnded(t *testing.T) {
	f := seededHub(t)
	c, _ := startTLS(t, f, nil, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetDevice(ctx, "dev1")
	if hub.ErrorCode(err) != hub.CodeGatewayTimeout || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want GatewayTimeout wrapping context.Canceled", err)
	}
}

func TestNewClientRejects(t *testing.T) {
	tests := []struct {
		name string
		cs   *sas.ConnectionString
	}{
		{"nil", nil},
		{"device connection string", &sas.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}},
		{"bad key", &sas.ConnectionString{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: "!!"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(tc.cs, Options{}); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestAnswerCutOff: a hub that dies in the middle of an answer (the
// connection closes before the body's end) is unreachable, which callers
// wait out, not a ServerError.
func TestAnswerCutOff(t *testing.T) {
	cut := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentTypeJSON)
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"jobId":"j","status":"runn`))
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
	}
	c, _ := startTLS(t, newFakeHub(), cut, Options{})
	_, err := c.GetJob(testCtx(t), "j")
	if hub.ErrorCode(err) != hub.CodeUnreachable || !strings.Contains(err.Error(), "broke while reading the answer") {
		t.Errorf("an answer cut off: %v, want Unreachable", err)
	}
}
