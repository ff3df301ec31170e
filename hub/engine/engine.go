package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/store"
)

var (
	_ hub.Client       = (*Engine)(nil)
	_ hub.DeviceEvents = (*Engine)(nil)
)

// DefaultWindow is how many device operations one job keeps in flight at
// most. About 1,000 is where broker throughput plateaus; beyond it replies
// start to be lost (README "A method job over 10,000 connected devices").
const DefaultWindow = 1000

// DefaultWriteLinger is the WriteLinger of a hub on the real clock:
// results durable 20 ms later, in a few dozen transactions a second.
const DefaultWriteLinger = 20 * time.Millisecond

// DefaultMaxActiveJobs is Azure's limit for S3 hubs (Free and S1 allow 1, S2 5).
const DefaultMaxActiveJobs = 10

// Engine is the hub's service side over a Store, a DeviceBus and a Clock.
// Set the optional fields before Open.
type Engine struct {
	// Window bounds the device operations of one job in flight.
	Window int
	// Logger defaults to slog.Default() with system=engine.
	Logger *slog.Logger
	// Metrics receives measurements; nil means none. The engine does not
	// depend on a metrics library: the hub adapts this to Prometheus.
	Metrics Metrics
	// MaxActiveJobs bounds the jobs queued, scheduled or running at once;
	// creating one more is refused with 429
	// ThrottlingMaxActiveJobCountExceeded. 0 means DefaultMaxActiveJobs,
	// negative no limit.
	MaxActiveJobs int
	// OpsPerSecond bounds the device operations (method calls, twin
	// updates) that jobs start per second, across all jobs of the hub,
	// which share it in turn. 0 means no limit.
	OpsPerSecond float64
	// WriteLinger is how long the store writer waits for more when what
	// it has queued is nobody's to wait on (a job's results), so that a
	// stream of results is stored in a few large transactions instead of
	// many small ones, whose fixed cost was a sixth of a method job's
	// CPU; they are durable that much later. 0 (the default) stores at
	// once: a virtual clock would see the linger among the timers it
	// drives. DefaultWriteLinger suits a hub on the real clock.
	WriteLinger time.Duration
	// Replica names this engine among hubs that share its store, which
	// must then implement store.Leaser: each job runs on one replica at a
	// time, under a lease, and another takes it over when its replica
	// stops renewing (cluster.go). "" (the default) runs every job here:
	// one hub per store.
	Replica string
	// LeaseTTL is how long a job's lease lasts unrenewed among replicas:
	// a replica that dies or is cut off loses its jobs after at most
	// this long. 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Endpoint is where this replica's API is, reported to the others.
	Endpoint string
	// NoAudit turns the audit log off (audit.go), for measuring what it
	// costs; a hub always keeps it.
	NoAudit bool

	store  store.Store
	leaser store.Leaser // among replicas, else nil
	bus    hub.DeviceBus
	clock  clock.Clock

	pace     *pacer
	createMu sync.Mutex // serialises CreateJob's limit check and create

	ctx    context.Context // the engine's own, for job goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
	writes chan *writeReq
	// writesMu orders sends on writes (read-locked) before Close closes
	// it (locked): an API call racing Close gets errEngineClosed instead
	// of a send on a closed channel.
	writesMu     sync.RWMutex
	writesClosed bool
	// twinCommits feeds twinCommitter.
	twinCommits chan *twinCommit
	// presence feeds presenceWriter; it exists from New, so that the
	// broker's events before Open wait for it instead of being lost.
	presence chan presenceUpdate
	closed   chan struct{} // closed by Close

	mu   sync.Mutex
	runs map[string]*run // jobs not yet terminal
}

// Metrics is what the engine measures.
type Metrics interface {
	// MethodCall records one direct-method round trip (in a job or not):
	// the outcome is "answered" or the error code, d the time from the
	// request to the answer or failure.
	MethodCall(outcome string, d time.Duration)
	// DeviceOperation records a device's final status in a job.
	DeviceOperation(jobType hub.JobType, status hub.DeviceJobStatus)
}

// JobCounts returns how many jobs the hub holds in each status.
func (e *Engine) JobCounts(ctx context.Context) (map[hub.JobStatus]int, error) {
	jobs, err := e.store.ListJobs(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[hub.JobStatus]int{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range jobs {
		if r := e.runs[j.JobID]; r != nil {
			j = r.job
		}
		counts[j.Status]++
	}
	return counts, nil
}

// New returns an engine; call Open before use.
func New(s store.Store, bus hub.DeviceBus, clk clock.Clock) *Engine {
	return &Engine{store: s, bus: bus, clock: clk, runs: map[string]*run{},
		presence: make(chan presenceUpdate, 8192), closed: make(chan struct{})}
}

// Open starts the engine and resumes the jobs a previous run left
// unfinished.
func (e *Engine) Open(ctx context.Context) error {
	if e.Window <= 0 {
		e.Window = DefaultWindow
	}
	if e.MaxActiveJobs == 0 {
		e.MaxActiveJobs = DefaultMaxActiveJobs
	}
	e.pace = newPacer(e.clock, e.OpsPerSecond)
	if e.Logger == nil {
		e.Logger = slog.Default().With("system", "engine")
	}
	if e.Replica != "" {
		l, ok := e.store.(store.Leaser)
		if !ok {
			return fmt.Errorf("replica %s: the store (%T) cannot be shared by replicas: use PostgreSQL", e.Replica, e.store)
		}
		e.leaser = l
		if e.LeaseTTL <= 0 {
			e.LeaseTTL = DefaultLeaseTTL
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.writes = make(chan *writeReq, 4096)
	e.twinCommits = make(chan *twinCommit, 1024)
	e.wg.Add(2)
	go e.runWriter()
	go e.twinCommitter()
	if err := e.resetConnections(ctx); err != nil {
		return err
	}
	// After the reset: presence reported meanwhile is newer than it.
	e.wg.Add(1)
	go e.presenceWriter()
	if e.leaser != nil {
		// The first round before Open returns: the replicas are known
		// (the hub's rate is shared among them) and free jobs adopted.
		e.claimRound(ctx)
		e.wg.Add(1)
		go e.claimer()
	}
	return e.resume(ctx)
}

// resetConnections marks every device disconnected: no device is connected
// to a hub that is only starting, whatever a crash left in the store. The
// broker reports connections from here on.
func (e *Engine) resetConnections(ctx context.Context) error {
	last := ""
	for {
		batch, err := e.store.ScanDevices(ctx, last, scanBatch)
		if err != nil {
			return fmt.Errorf("reset connection states: %w", err)
		}
		for _, d := range batch {
			last = d.DeviceID
			if d.ConnectionState != hub.Connected {
				continue
			}
			if _, err := e.store.UpdateDevice(ctx, d.DeviceID, func(d *store.Device) error {
				d.ConnectionState = hub.Disconnected
				return nil
			}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("reset connection state of %s: %w", d.DeviceID, err)
			}
		}
		if len(batch) < scanBatch {
			return nil
		}
	}
}

// Close stops every job goroutine and waits for them; unfinished jobs stay
// unfinished in the store and resume on the next Open.
func (e *Engine) Close() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		<-r.done
	}
	e.writesMu.Lock()
	e.writesClosed = true
	close(e.writes)
	e.writesMu.Unlock()
	close(e.twinCommits)
	close(e.closed)
	e.wg.Wait()
	e.cancel = nil // closed: a second Close does nothing
	return nil
}

// storeErr maps store sentinels to hub errors for a device or job id.
func storeErr(err error, code, what, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return hub.Errorf(code, "%s '%s' not found", what, id)
	case errors.Is(err, store.ErrConflict):
		return hub.Errorf(code, "%s '%s' already exists", what, id)
	}
	if _, ok := errors.AsType[*hub.Error](err); ok {
		return err
	}
	return hub.Errorf(hub.CodeServerError, "store: %v", err)
}

// etag renders a twin version as Azure does.
func etag(v int64) string { return store.ETag(v) }
