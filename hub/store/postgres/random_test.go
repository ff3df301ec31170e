package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

// TestRandomConditions holds the compiled queries to the reference
// evaluator for more random conditions than storetest.RunQueries draws,
// over another seed's fleet, in every query shape: SELECT *, projections,
// counts, aggregates and devices.jobs. The reference reads what the store
// holds (store.EvalDevices over a snapshot of ScanDevices).
func TestRandomConditions(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	storetest.FillFleet(t, s, 3)
	snap := snapshot(t, s)
	n := 400
	if testing.Short() {
		n = 100
	}
	r := rand.New(rand.NewPCG(2026, 5))
	shapes := []string{
		"SELECT * FROM devices WHERE ",
		"SELECT deviceId, tags.mixed AS m, properties.reported FROM devices WHERE ",
		"SELECT COUNT() AS n FROM devices WHERE ",
		"SELECT tags.floor, tags.flag, COUNT() AS n FROM devices WHERE ",
		"SELECT tags.mixed, COUNT() AS n, SUM(tags.score) AS s, AVG(tags.score) AS a, MIN(tags.mixed) AS lo, MAX(tags.name) AS hi FROM devices WHERE ",
	}
	failures := 0
	for i := range n {
		var src string
		switch shape := i % (len(shapes) + 1); {
		case shape == len(shapes):
			src = "SELECT * FROM devices.jobs WHERE " + storetest.RandomJobCondition(r)
		default:
			src = shapes[shape] + storetest.RandomCondition(r)
			switch shape {
			case 3:
				src += " GROUP BY tags.floor, tags.flag"
			case 4:
				src += " GROUP BY tags.mixed"
			}
		}
		q, err := query.Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, want := s.QueryDevices, func(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
			return store.EvalDevices(ctx, snap, q, after, limit)
		}
		if q.From == query.DevicesJobs {
			got, want = s.QueryDeviceJobs, func(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
				return store.EvalDeviceJobs(ctx, snap, q, after, limit)
			}
		}
		// A whole answer, then a middle page: paging after a key.
		for _, page := range []struct {
			limit int
			after bool
		}{{100_000, false}, {13, true}} {
			after := ""
			if page.after {
				first, err := want(ctx, q, "", page.limit)
				if err != nil || first.After == "" {
					continue
				}
				after = first.After
			}
			g, gerr := got(ctx, q, after, page.limit)
			w, werr := want(ctx, q, after, page.limit)
			if (gerr != nil) != (werr != nil) {
				t.Errorf("%s: error %v, reference error %v", src, gerr, werr)
				failures++
				continue
			}
			if gerr != nil {
				continue
			}
			if msg := diff(g, w); msg != "" {
				plan, _ := s.ExplainQuery(q)
				t.Errorf("%s (limit %d after %q): %s\ncompiled: %s", src, page.limit, after, msg, plan)
				failures++
			}
		}
		if failures >= 10 {
			t.Fatal("too many failures")
		}
	}
}

// diff compares two pages row by row, as decoded JSON.
func diff(got, want *store.Page) string {
	if got.After != want.After {
		return fmt.Sprintf("After %q, want %q", got.After, want.After)
	}
	if len(got.Items) != len(want.Items) {
		return fmt.Sprintf("%d rows, want %d", len(got.Items), len(want.Items))
	}
	for i := range got.Items {
		var g, w any
		_ = json.Unmarshal(got.Items[i], &g)
		_ = json.Unmarshal(want.Items[i], &w)
		if !reflect.DeepEqual(g, w) {
			return "row " + string(got.Items[i]) + "\nwant " + string(want.Items[i])
		}
	}
	return ""
}

// snapshotScanner is a store.Scanner (and DocScanner) over the devices
// and records of a store, read once, with their query documents built
// once.
type snapshotScanner struct {
	devs       []*store.Device
	djs        []*hub.DeviceJob
	devRows    []store.Row
	djRows     []store.Row
	devKeys    []string
	djKeys     []string
	djKeyPairs [][2]string
}

// docRow is a store.Row of a document built once.
type docRow map[string]any

func (d docRow) Doc() (map[string]any, error)   { return d, nil }
func (d docRow) JSON() (json.RawMessage, error) { return store.AppendJSON(nil, map[string]any(d)) }

func snapshot(t testing.TB, s store.Store) *snapshotScanner {
	ctx := context.Background()
	devs, err := s.ScanDevices(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	djs, err := s.ScanDeviceJobs(ctx, "", [2]string{}, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	snap := &snapshotScanner{devs: devs, djs: djs}
	for _, d := range devs {
		doc, err := store.Doc(d.Twin())
		if err != nil {
			t.Fatal(err)
		}
		snap.devRows, snap.devKeys = append(snap.devRows, docRow(doc)), append(snap.devKeys, d.DeviceID)
	}
	for _, dj := range djs {
		doc, err := store.Doc(dj)
		if err != nil {
			t.Fatal(err)
		}
		snap.djRows, snap.djKeys = append(snap.djRows, docRow(doc)), append(snap.djKeys, store.DeviceJobKey(dj.JobID, dj.DeviceID))
		snap.djKeyPairs = append(snap.djKeyPairs, [2]string{dj.JobID, dj.DeviceID})
	}
	return snap
}

// after is the index of the first key greater than key, in keys sorted by
// cmp.
func after[K any](keys []K, key K, cmp func(a, b K) int) int {
	i, found := slices.BinarySearchFunc(keys, key, cmp)
	if found {
		i++
	}
	return i
}

func pairCmp(a, b [2]string) int {
	if c := strings.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return strings.Compare(a[1], b[1])
}

func (s *snapshotScanner) ScanDevices(_ context.Context, afterID string, limit int) ([]*store.Device, error) {
	i := after(s.devKeys, afterID, strings.Compare)
	return s.devs[i:min(i+limit, len(s.devs))], nil
}

func (s *snapshotScanner) ScanDeviceRows(_ context.Context, afterID string, limit int) ([]store.Row, []string, error) {
	i := after(s.devKeys, afterID, strings.Compare)
	j := min(i+limit, len(s.devs))
	return s.devRows[i:j], s.devKeys[i:j], nil
}

func (s *snapshotScanner) ScanDeviceJobs(_ context.Context, jobID string, key [2]string, limit int) ([]*hub.DeviceJob, error) {
	var out []*hub.DeviceJob
	for _, dj := range s.djs[after(s.djKeyPairs, key, pairCmp):] {
		if (jobID == "" || dj.JobID == jobID) && len(out) < limit {
			out = append(out, dj)
		}
	}
	return out, nil
}

func (s *snapshotScanner) ScanDeviceJobRows(_ context.Context, jobID string, key [2]string, limit int) ([]store.Row, []string, error) {
	if jobID != "" {
		return nil, nil, fmt.Errorf("snapshot: rows of one job are not needed")
	}
	i := after(s.djKeyPairs, key, pairCmp)
	j := min(i+limit, len(s.djs))
	return s.djRows[i:j], s.djKeys[i:j], nil
}
