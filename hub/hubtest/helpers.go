package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// TestCtx is a context that ends with a deadline well inside the test's
// time budget.
func TestCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WantCode fails the test unless err carries the hub error code want.
func WantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, want)
		return
	}
	if got := hub.ErrorCode(err); got != want {
		t.Errorf("%s: error code %s (%v), want %s", what, got, err, want)
	}
}

// Must fails the test at once on an error.
func Must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// WaitJob watches a job until it has ended: a terminal status and its
// endTime (a cancelled job has its status at once, its endTime once its
// calls in flight are done).
func WaitJob(ctx context.Context, t *testing.T, c hub.Client, id string) *hub.Job {
	t.Helper()
	var last *hub.Job
	for {
		j, err := c.WatchJob(ctx, id, last)
		if err != nil {
			t.Fatalf("watch job %s (last status %v): %v", id, StatusOf(last), err)
		}
		if j.Status.Terminal() && j.EndTime != nil {
			return j
		}
		last = j
	}
}

// WaitJobStatus watches a job until it has status want.
func WaitJobStatus(ctx context.Context, t *testing.T, c hub.Client, id string, want hub.JobStatus) *hub.Job {
	t.Helper()
	var last *hub.Job
	for {
		j, err := c.WatchJob(ctx, id, last)
		if err != nil {
			t.Fatalf("watch job %s for %s (last status %v): %v", id, want, StatusOf(last), err)
		}
		if j.Status == want {
			return j
		}
		last = j
	}
}

func StatusOf(j *hub.Job) hub.JobStatus {
	if j == nil {
		return ""
	}
	return j.Status
}

// WaitTwin polls a twin (there is no twin change feed in hub.Client) on a
// short ticker until ok accepts it or ctx ends.
func WaitTwin(ctx context.Context, t *testing.T, c hub.Client, id string, ok func(*hub.Twin) bool) *hub.Twin {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var tw *hub.Twin
	for {
		var err error
		tw, err = c.GetTwin(ctx, id)
		if err == nil && ok(tw) {
			return tw
		}
		if errors.Is(err, hub.ErrDeviceNotFound) {
			t.Fatalf("wait for twin %s: %v", id, err)
		}
		select {
		case <-ctx.Done():
			b, _ := json.Marshal(tw)
			t.Fatalf("twin %s did not reach the expected state before the deadline (last error %v): %s", id, err, b)
		case <-tick.C:
		}
	}
}

// QueryAll runs a query page by page and returns the items and the number
// of pages.
func QueryAll(ctx context.Context, t *testing.T, c hub.Client, q string, pageSize int) ([]json.RawMessage, string, int) {
	t.Helper()
	var items []json.RawMessage
	opts := hub.QueryOptions{PageSize: pageSize}
	itemType := ""
	for pages := 1; ; pages++ {
		res, err := c.Query(ctx, q, opts)
		if err != nil {
			t.Fatalf("query %q page %d: %v", q, pages, err)
		}
		if pageSize > 0 && len(res.Items) > pageSize {
			t.Errorf("query %q page %d: %d items, page size %d", q, pages, len(res.Items), pageSize)
		}
		items = append(items, res.Items...)
		itemType = res.ItemType
		if res.Continuation == "" {
			return items, itemType, pages
		}
		if pages > 100 {
			t.Fatalf("query %q: more than 100 pages; the continuation never ends", q)
		}
		opts.Continuation = res.Continuation
	}
}

// JSONEqual reports whether two JSON texts hold the same value.
func JSONEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Errorf("bad JSON %s: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Errorf("bad JSON %s: %v", b, err)
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// num reads a JSON number decoded into any.
func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// WaitCount polls a "SELECT COUNT() AS n ..." query on a short ticker
// until it counts want or ctx ends.
func WaitCount(ctx context.Context, t *testing.T, c hub.Client, q string, want int) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := c.Query(ctx, q, hub.QueryOptions{})
		var row struct{ N int }
		if err == nil && len(res.Items) == 1 && json.Unmarshal(res.Items[0], &row) == nil && row.N == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: count %d (error %v), want %d before the deadline", q, row.N, err, want)
		case <-tick.C:
		}
	}
}

// DeviceJobs reads a job's per-device rows, by device id.
func DeviceJobs(ctx context.Context, t *testing.T, c hub.Client, jobID string) map[string]*hub.DeviceJob {
	t.Helper()
	return DeviceJobsPaged(ctx, t, c, jobID, 2)
}

// DeviceJobsPaged is DeviceJobs with pages of pageSize rows.
func DeviceJobsPaged(ctx context.Context, t *testing.T, c hub.Client, jobID string, pageSize int) map[string]*hub.DeviceJob {
	t.Helper()
	items, itemType, _ := QueryAll(ctx, t, c, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", pageSize)
	if len(items) > 0 && itemType != hub.ItemDeviceJob {
		t.Errorf("devices.jobs item type %q, want %q", itemType, hub.ItemDeviceJob)
	}
	out := map[string]*hub.DeviceJob{}
	for _, it := range items {
		var dj hub.DeviceJob
		if err := json.Unmarshal(it, &dj); err != nil {
			t.Fatalf("devices.jobs item is not a device job: %s", it)
		}
		if out[dj.DeviceID] != nil {
			t.Errorf("devices.jobs: device %s listed twice for job %s", dj.DeviceID, jobID)
		}
		if dj.JobID != jobID {
			t.Errorf("devices.jobs: row of job %q in the rows of %q", dj.JobID, jobID)
		}
		out[dj.DeviceID] = &dj
	}
	return out
}
