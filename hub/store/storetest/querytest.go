package storetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// QueryExplainer is implemented by stores that compile queries. RunQueries
// prints the compiled form of a failing query and counts the queries a
// store leaves to the reference evaluator.
type QueryExplainer interface {
	// ExplainQuery returns the compiled form of q (e.g. SQL and its
	// arguments) and whether q compiles; false means the store answers it
	// with store.EvalDevices or EvalDeviceJobs.
	ExplainQuery(q *query.Query) (plan string, compiled bool)
}

// Fleet sizes of the differential test.
const (
	fleetDevices = 1000
	fleetJobs    = 6
	randomConds  = 200
)

// CorpusFile is the query corpus, one query per line ('#' starts a
// comment line), relative to this source file.
func CorpusFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "query", "testdata", "corpus.txt")
}

// ReadCorpus returns the queries of the corpus file.
func ReadCorpus(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open(CorpusFile())
	if err != nil {
		tb.Fatalf("open corpus: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), query.MaxLength+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read corpus: %v", err)
	}
	return out
}

// RunQueries is the differential query test: it fills a store from open
// with a seeded fleet of varied twins and device-job records, then holds
// QueryDevices and QueryDeviceJobs to the reference answers of
// store.EvalDevices and EvalDeviceJobs for every corpus query and a seeded
// set of random conditions, paging with several page sizes.
func RunQueries(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := open(t)
	FillFleet(t, s, 1)
	snap := snapshot(t, s)

	var queries []string
	queries = append(queries, ReadCorpus(t)...)
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < randomConds; i++ {
		cond := RandomCondition(r)
		switch i % 5 {
		case 0, 1, 2:
			queries = append(queries, "SELECT * FROM devices WHERE "+cond)
		case 3:
			queries = append(queries, "SELECT deviceId, tags.floor AS f, properties.reported.temperature FROM devices WHERE "+cond)
		case 4:
			queries = append(queries, "SELECT tags.mixed, COUNT() AS n, SUM(tags.score) AS s, MIN(tags.mixed) AS lo, MAX(tags.name) AS hi FROM devices WHERE "+cond+" GROUP BY tags.mixed")
		}
	}
	for i := 0; i < randomConds/4; i++ {
		queries = append(queries, "SELECT * FROM devices.jobs WHERE "+RandomJobCondition(r))
	}
	for i := 0; i < randomConds/4; i++ {
		cond := RandomCondition(r)
		switch i % 3 {
		case 0:
			queries = append(queries, "SELECT * FROM devices.modules WHERE "+cond)
		case 1:
			queries = append(queries, "SELECT deviceId, moduleId, tags.floor AS f FROM devices.modules WHERE "+cond)
		case 2:
			queries = append(queries, "SELECT moduleId, COUNT() AS n FROM devices.modules WHERE "+cond+" GROUP BY moduleId")
		}
	}
	explainer, _ := s.(QueryExplainer)
	fallbacks := 0
	var failures int
	for n, src := range queries {
		q, err := query.Parse(src)
		if err != nil {
			t.Errorf("corpus query %q does not parse: %v", src, err)
			continue
		}
		plan := "(store does not explain queries)"
		if explainer != nil {
			var ok bool
			plan, ok = explainer.ExplainQuery(q)
			if !ok {
				fallbacks++
				t.Logf("not compiled: %s: %s", src, plan)
			}
		}
		if raceEnabled && n%3 != 0 {
			continue
		}
		if msg := checkQuery(ctx, s, snap, q, n, n%40 == 0); msg != "" {
			failures++
			if failures <= 20 {
				t.Errorf("query %s\ncompiled: %s\n%s", src, plan, msg)
			}
		}
	}
	if failures > 20 {
		t.Errorf("%d queries failed in all (first 20 shown)", failures)
	}
	t.Logf("%d queries, %d answered by the reference evaluator (not compiled), race detector %v", len(queries), fallbacks, raceEnabled)
}

// queryFn is QueryDevices or QueryDeviceJobs.
type queryFn func(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error)

// checkQuery compares the store with the reference for q and returns ""
// or what differs. The reference is one call of store.EvalDevices (or
// EvalDeviceJobs) for the whole answer; the pages of sizes 1000, 7 and 1
// the store returns must be that answer cut as EvalDevices cuts it: rows
// of a plain query in pages of at most limit, After the key of the page's
// last row when more rows follow (the keys of the matching documents come
// from query.Match over the snapshot), and grouped rows all on one page.
// The first pages of each size are also compared with EvalDevices itself.
func checkQuery(ctx context.Context, s store.Store, snap *snapshotScanner, q *query.Query, n int, sample bool) string {
	got, want := s.QueryDevices, func(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
		return store.EvalDevices(ctx, snap, q, after, limit)
	}
	docs, keys, enc := snap.deviceDocs, snap.deviceKeys, snap.deviceEnc
	if q.From == query.DevicesModules {
		docs, keys, enc = snap.moduleDocs, snap.moduleKeys, snap.moduleEnc
	}
	if q.From == query.DevicesJobs {
		got, want = s.QueryDeviceJobs, func(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
			return store.EvalDeviceJobs(ctx, snap, q, after, limit)
		}
		docs, keys, enc = snap.jobDocs, snap.jobKeys, snap.jobEnc
	}
	var matched []string
	var mdocs []map[string]any
	var matchedIdx []int
	for i, d := range docs {
		if query.Match(q.Where, d) {
			matched, mdocs, matchedIdx = append(matched, keys[i]), append(mdocs, d), append(matchedIdx, i)
		}
	}
	full, werr := localEval(q, mdocs, func(i int) json.RawMessage { return enc[matchedIdx[i]] })
	if sample {
		// The local answer is what EvalDevices computes; check that it is.
		ref, err := want(ctx, q, "", math.MaxInt32)
		if (err != nil) != (werr != nil) {
			return fmt.Sprintf("test bug: reference error %v, local evaluation error %v", err, werr)
		}
		if err == nil {
			if msg := diffPages(full, ref); msg != "" {
				return "test bug: local evaluation differs from the reference: " + msg
			}
		}
	}
	if werr != nil {
		if _, gerr := got(ctx, q, "", 1000); gerr == nil {
			return fmt.Sprintf("store answers, reference error %v", werr)
		}
		return ""
	}
	grouped := q.Grouped()
	sizes := []int{1000, 7, 1}
	if raceEnabled {
		sizes = []int{1000, []int{7, 1}[n/3%2]} // sampled queries (n%120 == 0 under race) page by 7
	}
	for _, size := range sizes {
		after := ""
		for pos, pages := 0, 0; ; pages++ {
			gp, err := got(ctx, q, after, size)
			if err != nil {
				return fmt.Sprintf("page size %d after %q: %v", size, after, err)
			}
			wp := &store.Page{Items: full.Items}
			if !grouped {
				end := min(pos+size, len(full.Items))
				wp.Items = full.Items[pos:end]
				if end < len(full.Items) {
					wp.After = matched[end-1]
				}
				pos = end
			}
			if sample && pages == 1 && size == 7 {
				// The cut above is what EvalDevices does; check it.
				ep, err := want(ctx, q, after, size)
				if err != nil {
					return fmt.Sprintf("reference page size %d after %q: %v", size, after, err)
				}
				if msg := diffPages(ep, wp); msg != "" {
					return fmt.Sprintf("test bug: reference page size %d after %q differs from its whole answer: %s", size, after, msg)
				}
			}
			if msg := diffPages(gp, wp); msg != "" {
				return fmt.Sprintf("page size %d after %q: %s", size, after, msg)
			}
			if wp.After == "" || pages >= 1 {
				break
			}
			after = wp.After
		}
	}
	return ""
}

// localEval is what store.EvalDevices and EvalDeviceJobs compute over the
// matching documents, without their scan: query.Eval (TOP ignored), rows
// encoded with encoding/json.
func localEval(q *query.Query, docs []map[string]any, encoded func(i int) json.RawMessage) (*store.Page, error) {
	all := *q
	all.Top = -1
	if q.From != query.Devices && q.From != query.DevicesModules && q.From != query.DevicesJobs {
		return nil, fmt.Errorf("FROM %s", q.From)
	}
	if q.Select == nil && !q.Grouped() {
		// The rows are the documents, whose encodings are computed once.
		page := &store.Page{Items: make([]json.RawMessage, len(docs))}
		for i := range docs {
			page.Items[i] = encoded(i)
		}
		return page, nil
	}
	rows, err := query.Eval(&all, docs)
	if err != nil {
		return nil, err
	}
	items, err := store.EncodeRows(rows)
	if err != nil {
		return nil, err
	}
	return &store.Page{Items: items}, nil
}

// diffPages compares two pages: the same After and the same rows, byte
// for byte (both sides encode rows with encoding/json); rows that differ
// are shown decoded.
func diffPages(got, want *store.Page) string {
	var b strings.Builder
	if got.After != want.After {
		fmt.Fprintf(&b, "After = %q, want %q\n", got.After, want.After)
	}
	if len(got.Items) != len(want.Items) {
		fmt.Fprintf(&b, "%d rows, want %d\n", len(got.Items), len(want.Items))
	}
	shown := 0
	for i := 0; i < max(len(got.Items), len(want.Items)) && shown < 5; i++ {
		var g, w json.RawMessage
		if i < len(got.Items) {
			g = got.Items[i]
		}
		if i < len(want.Items) {
			w = want.Items[i]
		}
		if string(g) == string(w) {
			continue
		}
		var gv, wv any
		_ = json.Unmarshal(g, &gv)
		_ = json.Unmarshal(w, &wv)
		if reflect.DeepEqual(gv, wv) && g != nil && w != nil {
			continue // the same row, encoded differently
		}
		shown++
		fmt.Fprintf(&b, "row %d:\n  got  %s\n  want %s\n", i, truncate(string(g)), truncate(string(w)))
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// snapshotScanner serves the reference evaluators from devices and
// device-job records read once from the store, so that each reference
// answer costs no store round trips.
type snapshotScanner struct {
	devices []*store.Device
	jobs    []*hub.DeviceJob

	// The query documents and page keys, in key order.
	deviceDocs, moduleDocs, jobDocs []map[string]any
	deviceKeys, moduleKeys, jobKeys []string
	deviceEnc, moduleEnc, jobEnc    []json.RawMessage // the documents encoded with encoding/json
}

func snapshot(t *testing.T, s store.Store) *snapshotScanner {
	ctx := context.Background()
	snap := &snapshotScanner{}
	after := ""
	for {
		batch, err := s.ScanDevices(ctx, after, 500)
		if err != nil {
			t.Fatalf("ScanDevices: %v", err)
		}
		snap.devices = append(snap.devices, batch...)
		if len(batch) < 500 {
			break
		}
		after = batch[len(batch)-1].DeviceID
	}
	var key [2]string
	for {
		batch, err := s.ScanDeviceJobs(ctx, "", key, 500)
		if err != nil {
			t.Fatalf("ScanDeviceJobs: %v", err)
		}
		snap.jobs = append(snap.jobs, batch...)
		if len(batch) < 500 {
			break
		}
		last := batch[len(batch)-1]
		key = [2]string{last.JobID, last.DeviceID}
	}
	for _, d := range snap.devices {
		doc, err := store.Doc(d.Twin())
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if store.IsModuleRow(d.DeviceID) {
			snap.moduleDocs, snap.moduleKeys, snap.moduleEnc = append(snap.moduleDocs, doc), append(snap.moduleKeys, d.DeviceID), append(snap.moduleEnc, b)
			continue
		}
		snap.deviceDocs, snap.deviceKeys, snap.deviceEnc = append(snap.deviceDocs, doc), append(snap.deviceKeys, d.DeviceID), append(snap.deviceEnc, b)
	}
	for _, dj := range snap.jobs {
		doc, err := store.Doc(dj)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		snap.jobDocs, snap.jobKeys, snap.jobEnc = append(snap.jobDocs, doc), append(snap.jobKeys, store.DeviceJobKey(dj.JobID, dj.DeviceID)), append(snap.jobEnc, b)
	}
	return snap
}

func (s *snapshotScanner) ScanDevices(_ context.Context, afterID string, limit int) ([]*store.Device, error) {
	var out []*store.Device
	for _, d := range s.devices {
		if d.DeviceID > afterID && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *snapshotScanner) ScanDeviceJobs(_ context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	var out []*hub.DeviceJob
	for _, dj := range s.jobs {
		if jobID != "" && dj.JobID != jobID {
			continue
		}
		if dj.JobID > after[0] || dj.JobID == after[0] && dj.DeviceID > after[1] {
			if len(out) < limit {
				out = append(out, dj)
			}
		}
	}
	return out, nil
}

// Value pools of the fleet: every random condition draws its constants
// from these, so that conditions select something.
var (
	fleetStrings = []string{"", "a", "A", "abc", "ABC", "Berlin", "berlin", "US", "EU", "eu", "Grüße", "GRÜSSE", "ß", "İstanbul",
		"ǅemal", "O'Brien", `say "hi"`, `back\slash`, "a<b>&c", "tab\there", "nul\x00byte", "☃ snow", "日本語", "😀 emoji",
		"1", "3", "3.0", "true", "null", "1.2.3", "1.10.0", "x-y_z", " spaced "}
	fleetNumbers = []float64{0, math.Copysign(0, -1), 1, -1, 2, 3, 7, 10, 42, -42, 0.5, -0.5, 0.1, 0.2, 0.30000000000000004, 1.5, 3.14159, 100, 255,
		1e6, 1e21, 1e300, -1e300, 5e-324, 9007199254740993, 9007199254740992, 123456789.125, -0.0001, 1e-7}
	fleetPaths = []string{
		"deviceId", "status", "connectionState", "statusReason", "version", "etag", "lastActivityTime", "authenticationType",
		"cloudToDeviceMessageCount", "capabilities.iotEdge", "modelId", "x509Thumbprint.primaryThumbprint",
		"tags", "tags.floor", "tags.name", "tags.score", "tags.flag", "tags.mixed", "tags.nullTag", "tags.arr", "tags.missing",
		"tags.location", "tags.location.region", "tags.location.building", "tags.location.floor", "tags.a.b.c.d",
		"tags.big", "tags.[[count]]", "tags.[[we.ird key]]", `tags.[[quote"key]]`, "tags.$dollar", "tags.ü", "tags.[[a<b]]",
		"tags.[[group]]", "tags.Name", "properties.desired.$version", "properties.desired.mode",
		"properties.desired.telemetryInterval", "properties.desired.config.level", "properties.desired.config",
		"properties.reported.firmware", "properties.reported.temperature", "properties.reported.battery",
		"properties.reported.online", "properties.reported.$version", "properties.reported.list",
	}
	jobPaths = []string{"jobId", "deviceId", "status", "jobType", "startTimeUtc", "endTimeUtc", "createdDateTimeUtc",
		"lastUpdatedDateTimeUtc", "outcome", "outcome.deviceMethodResponse.status", "outcome.deviceMethodResponse.payload",
		"outcome.deviceMethodResponse.payload.n", "outcome.deviceMethodResponse.payload.msg", "error.code", "error.description"}
)

// fleetValue returns a random JSON value of any type, mostly primitives.
func fleetValue(r *rand.Rand, depth int) any {
	switch n := r.IntN(20); {
	case n < 6:
		return fleetStrings[r.IntN(len(fleetStrings))]
	case n < 12:
		return fleetNumbers[r.IntN(len(fleetNumbers))]
	case n < 13:
		return float64(r.IntN(2001) - 1000)
	case n < 15:
		return r.IntN(2) == 0
	case n < 16:
		return nil
	case n < 18 && depth < 3:
		m := map[string]any{}
		for i := r.IntN(4); i > 0; i-- {
			m[[]string{"x", "y", "z", "region", "level"}[r.IntN(5)]] = fleetValue(r, depth+1)
		}
		return m
	case depth < 3:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = fleetValue(r, depth+1)
		}
		return a
	}
	return "leaf"
}

// FillFleet creates the differential test's seeded fleet in s: devices
// with varied twins (set through UpdateDevice) and device-job records.
func FillFleet(tb testing.TB, s store.Store, seed uint64) {
	tb.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 99))
	ids := make([]string, 0, fleetDevices)
	// Modules draw from their own source, so the devices and records
	// stay those of fleets before modules.
	rm := rand.New(rand.NewPCG(seed, 101))
	special := []string{"dev-ü-01", "q'uote", `dq"uote`, "UPPER", "lower", "Z", "a.b", "日本", "😀", "with space"}
	for i := 0; i < fleetDevices; i++ {
		id := fmt.Sprintf("d%04d", i)
		if i < len(special) {
			id = special[i]
		}
		ids = append(ids, id)
		d := &store.Device{Device: hub.Device{
			DeviceID:          id,
			Status:            []string{hub.StatusEnabled, hub.StatusDisabled}[r.IntN(2)],
			ConnectionState:   []string{hub.Connected, hub.Disconnected}[r.IntN(2)],
			LastActivityTime:  hub.Time{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(1e6)) * time.Second)},
			StatusUpdatedTime: hub.Time{Time: time.Date(2024, 2, 1, 0, 0, 0, r.IntN(1e9), time.UTC)},
		}, Version: int64(r.IntN(20))}
		if r.IntN(3) == 0 {
			reason := fleetStrings[r.IntN(len(fleetStrings))]
			d.StatusReason = &reason
		}
		if err := s.CreateDevice(ctx, d); err != nil {
			tb.Fatalf("CreateDevice(%s): %v", id, err)
		}
		if i%7 == 3 {
			fillModules(tb, s, rm, id, i)
		}
		if i%10 == 9 {
			continue // some devices keep empty twins
		}
		tags, desired, reported := fleetTwin(r, i)
		if _, err := s.UpdateDevice(ctx, id, func(d *store.Device) error {
			d.Tags, d.Desired, d.Reported = tags, desired, reported
			d.Version++
			return nil
		}); err != nil {
			tb.Fatalf("UpdateDevice(%s): %v", id, err)
		}
	}
	var djs []*hub.DeviceJob
	for j := 0; j < fleetJobs; j++ {
		jobID := fmt.Sprintf("job-%d", j)
		if j == fleetJobs-1 {
			jobID = "Job ü"
		}
		typ := []hub.JobType{hub.JobDeviceMethod, hub.JobUpdateTwin}[j%2]
		for i, id := range ids {
			if r.IntN(4) != 0 || i%(j+2) == 0 {
				continue
			}
			dj := &hub.DeviceJob{DeviceID: id, JobID: jobID, JobType: typ,
				Status:             []hub.DeviceJobStatus{hub.DeviceJobPending, hub.DeviceJobScheduled, hub.DeviceJobRunning, hub.DeviceJobCompleted, hub.DeviceJobFailed, hub.DeviceJobCanceled}[r.IntN(6)],
				CreatedDateTimeUtc: hub.NewTime(time.Date(2024, 3, 1, 0, 0, r.IntN(1000), 0, time.UTC)),
			}
			if dj.Status != hub.DeviceJobPending {
				dj.StartTimeUtc = hub.NewTime(time.Date(2024, 3, 1, 1, 0, r.IntN(1000), r.IntN(1e9), time.UTC))
				dj.LastUpdatedDateTimeUtc = dj.StartTimeUtc
			}
			switch dj.Status {
			case hub.DeviceJobCompleted:
				dj.EndTimeUtc = dj.StartTimeUtc
				if typ == hub.JobDeviceMethod {
					payloads := []string{`{"n":1,"msg":"ok"}`, `{"n":-2.5,"msg":"Grüße"}`, `null`, `"text"`, `[1,2,3]`,
						`{"n":123456789012345678901234567890}`, `{"n":0.1000000000000000055511151231257827}`, `{"n":1E2}`, `{}`}
					dj.Outcome = &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{
						Status: []int{200, 201, 404, 500}[r.IntN(4)], Payload: json.RawMessage(payloads[r.IntN(len(payloads))])}}
				}
			case hub.DeviceJobFailed:
				dj.EndTimeUtc = dj.StartTimeUtc
				dj.Error = &hub.DeviceJobError{Code: []string{"DeviceNotOnline", "GatewayTimeout", "JobRunPreconditionFailed"}[r.IntN(3)], Description: "it failed ☃"}
			}
			djs = append(djs, dj)
		}
	}
	if err := s.PutDeviceJobs(ctx, djs); err != nil {
		tb.Fatalf("PutDeviceJobs: %v", err)
	}
}

// fillModules gives fleet device i one to three modules (rows keyed
// "{deviceId}/{moduleId}", hub.ModuleKey) with twins of the fleet's
// shape: FROM devices must leave them out and FROM devices.modules read
// them alone. Their module ids sort around the device's own id's
// neighbours ('-' and '.' before '/', letters after).
func fillModules(tb testing.TB, s store.Store, r *rand.Rand, id string, i int) {
	tb.Helper()
	ctx := context.Background()
	for _, mod := range []string{"edge", "Temp-Sensor", "m.1"}[:1+r.IntN(3)] {
		key := hub.ModuleKey(id, mod)
		d := &store.Device{Device: hub.Device{
			DeviceID:        key,
			Status:          hub.StatusEnabled,
			ConnectionState: []string{hub.Connected, hub.Disconnected}[r.IntN(2)],
		}, Version: int64(1 + r.IntN(5))}
		if err := s.CreateDevice(ctx, d); err != nil {
			tb.Fatalf("CreateDevice(%s): %v", key, err)
		}
		tags, desired, reported := fleetTwin(r, i+r.IntN(50))
		if _, err := s.UpdateDevice(ctx, key, func(d *store.Device) error {
			d.Tags, d.Desired, d.Reported = tags, desired, reported
			return nil
		}); err != nil {
			tb.Fatalf("UpdateDevice(%s): %v", key, err)
		}
	}
}

// fleetTwin returns the twin sections of fleet device i: a common shape
// with type clashes, missing keys, odd keys and odd numbers.
func fleetTwin(r *rand.Rand, i int) (tags, desired, reported map[string]any) {
	pick := func(p float64) bool { return r.Float64() < p }
	tags = map[string]any{}
	if pick(0.8) {
		loc := map[string]any{}
		if pick(0.9) {
			loc["region"] = []any{"US", "EU", "eu", "Asia", "", "ü-region", 1.0, nil}[r.IntN(8)]
		}
		if pick(0.7) {
			loc["building"] = float64(r.IntN(5))
		}
		if pick(0.5) {
			loc["floor"] = fleetValue(r, 2)
		}
		tags["location"] = loc
	} else if pick(0.5) {
		tags["location"] = "somewhere"
	}
	switch r.IntN(6) {
	case 0, 1:
		tags["floor"] = float64(r.IntN(10) - 2)
	case 2:
		tags["floor"] = strconv.Itoa(r.IntN(10))
	case 3:
		tags["floor"] = nil
	case 4:
		tags["floor"] = r.IntN(2) == 0
	}
	if pick(0.9) {
		tags["name"] = fleetStrings[r.IntN(len(fleetStrings))]
	}
	if pick(0.85) {
		tags["score"] = fleetNumbers[r.IntN(len(fleetNumbers))] * float64(1+r.IntN(3))
	}
	if pick(0.6) {
		tags["flag"] = r.IntN(2) == 0
	}
	if pick(0.9) {
		tags["mixed"] = fleetValue(r, 1)
	}
	if pick(0.2) {
		tags["nullTag"] = nil
	}
	if pick(0.4) {
		tags["arr"] = fleetValue(r, 2)
	}
	if pick(0.3) {
		tags["a"] = map[string]any{"b": map[string]any{"c": map[string]any{"d": fleetValue(r, 2)}}}
	}
	if pick(0.2) {
		// Go integers, as the engine may store them before any round trip.
		tags["big"] = int64(1)<<62 + int64(r.IntN(1000))
		tags["count"] = r.IntN(100)
	}
	for _, k := range []string{"we.ird key", `quote"key`, "$dollar", "ü", "a<b", "group", "Name"} {
		if pick(0.15) {
			tags[k] = fleetValue(r, 2)
		}
	}
	desired = map[string]any{"$version": float64(1 + r.IntN(9))}
	if pick(0.7) {
		desired["mode"] = []string{"eco", "turbo", "Eco", ""}[r.IntN(4)]
	}
	if pick(0.7) {
		desired["telemetryInterval"] = float64([]int{5, 10, 30, 60}[r.IntN(4)])
	}
	if pick(0.5) {
		desired["config"] = map[string]any{"level": fleetValue(r, 2), "on": r.IntN(2) == 0}
	}
	reported = map[string]any{"$version": float64(1 + r.IntN(50))}
	if pick(0.8) {
		reported["firmware"] = []string{"1.2.3", "1.10.0", "2.0.0-beta", "1.2.3"}[r.IntN(4)]
	}
	if pick(0.8) {
		reported["temperature"] = math.Round((r.Float64()*80-20)*100) / 100
	}
	if pick(0.7) {
		reported["battery"] = float64(r.IntN(101))
	}
	if pick(0.6) {
		reported["online"] = r.IntN(2) == 0
	}
	if pick(0.3) {
		reported["list"] = []any{float64(i % 7), "x", nil}
	}
	return tags, desired, reported
}

// RandomCondition returns a random condition over the fleet's paths and
// values, from a grammar covering every operator and function.
func RandomCondition(r *rand.Rand) string { return randCond(r, 0, fleetPaths) }

// RandomJobCondition is RandomCondition over device-job paths.
func RandomJobCondition(r *rand.Rand) string { return randCond(r, 0, jobPaths) }

func randConst(r *rand.Rand) string {
	switch r.IntN(10) {
	case 0, 1, 2, 3:
		return query.Const{Value: fleetStrings[r.IntN(len(fleetStrings))]}.String()
	case 4, 5, 6:
		return query.Const{Value: fleetNumbers[r.IntN(len(fleetNumbers))]}.String()
	case 7:
		return []string{"true", "false"}[r.IntN(2)]
	case 8:
		return "null"
	}
	return []string{"undefined", "0x1F", "-3", "2.5e1"}[r.IntN(4)]
}

func randOperand(r *rand.Rand, depth int, paths []string) string {
	p := paths[r.IntN(len(paths))]
	switch n := r.IntN(12); {
	case n < 6:
		return p
	case n < 8:
		return randConst(r)
	case n < 9 && depth < 3:
		return randOperand(r, depth+1, paths) + " " + []string{"+", "-", "*", "/", "%"}[r.IntN(5)] + " " + randOperand(r, depth+1, paths)
	case n < 10:
		return []string{"LOWER", "UPPER", "LENGTH"}[r.IntN(3)] + "(" + p + ")"
	case n < 11:
		return "-" + p
	}
	return "(" + p + ")"
}

func randCond(r *rand.Rand, depth int, paths []string) string {
	p := paths[r.IntN(len(paths))]
	n := r.IntN(14)
	if depth >= 3 {
		n = r.IntN(8)
	}
	switch n {
	case 0, 1, 2:
		return randOperand(r, depth, paths) + " " + []string{"=", "!=", "<>", "<", ">", "<=", ">="}[r.IntN(7)] + " " + randOperand(r, depth, paths)
	case 3:
		list := make([]string, 1+r.IntN(4))
		for i := range list {
			list[i] = randConst(r)
		}
		return randOperand(r, depth, paths) + " " + []string{"IN", "NIN", "NOT IN"}[r.IntN(3)] + " [" + strings.Join(list, ", ") + "]"
	case 4:
		return []string{"IS_DEFINED", "IS_NULL", "IS_BOOL", "IS_NUMBER", "IS_STRING", "IS_OBJECT", "IS_ARRAY", "IS_PRIMITIVE"}[r.IntN(8)] + "(" + randOperand(r, depth, paths) + ")"
	case 5:
		arg := query.Const{Value: fleetStrings[r.IntN(len(fleetStrings))]}.String()
		if s := []rune(arg); len(s) > 4 && r.IntN(2) == 0 {
			arg = string(s[:len(s)-2]) + "'"
		}
		if r.IntN(4) == 0 {
			arg = paths[r.IntN(len(paths))]
		}
		return []string{"STARTSWITH", "ENDSWITH", "CONTAINS", "STARTS_WITH", "ENDS_WITH"}[r.IntN(5)] + "(" + p + ", " + arg + ")"
	case 6:
		return p
	case 7:
		return randConst(r)
	case 8, 9:
		return "NOT " + randCond(r, depth+1, paths)
	case 10, 11:
		return "(" + randCond(r, depth+1, paths) + " AND " + randCond(r, depth+1, paths) + ")"
	default:
		return "(" + randCond(r, depth+1, paths) + " OR " + randCond(r, depth+1, paths) + ")"
	}
}
