package postgres_test

import (
	"context"
	"testing"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

// FuzzQuery holds the store to the reference evaluator for any condition
// the parser accepts, over the storetest fleet: as SELECT *, as a page
// after a key, and as COUNT() groups.
//
//	go test -run '^$' -fuzz FuzzQuery ./hub/store/postgres
func FuzzQuery(f *testing.F) {
	for _, seed := range []string{
		"tags.floor = 3",
		"LOWER(tags.name) = 'grüße' OR UPPER(tags.mixed) = 'ǄEMAL'",
		"tags.score * 1e300 * 1e300 < 0 OR 1 / (tags.score * 1e-300) > 0",
		"tags.name >= 'nul\\u0000a' AND CONTAINS('a\\u0000b', tags.name)",
		"deviceId > 'd05' AND NOT IS_DEFINED(tags.location.region)",
		"tags.floor % 2 = 1 OR tags.flag",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	s := open(f)
	storetest.FillFleet(f, s, 1)
	snap := snapshot(f, s)
	f.Fuzz(func(t *testing.T, cond string) {
		if _, err := query.ParseCondition(cond); err != nil {
			return
		}
		for _, src := range []string{
			"SELECT * FROM devices WHERE " + cond,
			"SELECT tags.floor, COUNT() AS n FROM devices WHERE " + cond + " GROUP BY tags.floor",
		} {
			q, err := query.Parse(src)
			if err != nil {
				continue // the condition swallowed part of the query around it
			}
			for _, page := range []struct {
				after string
				limit int
			}{{"", 100_000}, {"d0500", 7}} {
				got, gerr := s.QueryDevices(ctx, q, page.after, page.limit)
				want, werr := store.EvalDevices(ctx, snap, q, page.after, page.limit)
				if (gerr != nil) != (werr != nil) {
					t.Fatalf("%s: error %v, reference error %v", src, gerr, werr)
				}
				if gerr != nil {
					continue
				}
				if msg := diff(got, want); msg != "" {
					plan, _ := s.ExplainQuery(q)
					t.Fatalf("%s (after %q, limit %d): %s\ncompiled: %s", src, page.after, page.limit, msg, plan)
				}
			}
		}
	})
}
