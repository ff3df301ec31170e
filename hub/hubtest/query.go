package hubtest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

func testQuery(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 10*time.Second)
	c := h.Client

	items, itemType, pages := QueryAll(ctx, t, c, "SELECT * FROM devices WHERE tags.x = 'y'", 1)
	var ids []string
	for _, it := range items {
		var tw hub.Twin
		if err := json.Unmarshal(it, &tw); err != nil {
			t.Fatalf("query item is not a twin: %s", it)
		}
		ids = append(ids, tw.DeviceID)
	}
	slices.Sort(ids)
	if want := []string{"echo", "lock-fail", "lock-ok"}; !slices.Equal(ids, want) {
		t.Errorf("paged query returned %v, want each of %v once", ids, want)
	}
	if pages != 3 || itemType != hub.ItemTwin {
		t.Errorf("paged query: %d pages of %q, want 3 pages (page size 1, no extra empty page) of %q", pages, itemType, hub.ItemTwin)
	}

	// Unpaged, the same twins in one page.
	all, _, pages := QueryAll(ctx, t, c, "SELECT * FROM devices WHERE tags.x = 'y'", 0)
	if len(all) != 3 || pages != 1 {
		t.Errorf("unpaged query: %d items in %d pages, want 3 in 1", len(all), pages)
	}

	counts := []struct {
		query string
		want  string
	}{
		{"SELECT COUNT() AS n FROM devices", `[{"n":4}]`},
		{"SELECT COUNT() AS n FROM devices WHERE tags.role = 'lock'", `[{"n":3}]`},
		{"SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", `[{"n":3}]`},
	}
	count := func(t *testing.T, q, want string) {
		t.Helper()
		res, err := c.Query(ctx, q, hub.QueryOptions{})
		if err != nil {
			t.Errorf("%s: %v", q, err)
			return
		}
		got, _ := json.Marshal(res.Items)
		if !JSONEqual(t, got, []byte(want)) || res.ItemType != hub.ItemRaw || res.Continuation != "" {
			t.Errorf("%s: items %s type %q continuation %q, want %s of %q and no continuation", q, got, res.ItemType, res.Continuation, want, hub.ItemRaw)
		}
	}
	for _, cq := range counts {
		if strings.Contains(cq.query, "connectionState") {
			t.Run("connectionStates", func(t *testing.T) {
				needConnectionStates(t, h)
				count(t, cq.query, cq.want)
			})
			continue
		}
		count(t, cq.query, cq.want)
	}

	bad := []string{
		"SELEC * FROM devices",
		"SELECT * FROM devices WHERE",
		"SELECT * FROM devices WHERE tags.x = 'unterminated",
		"SELECT * FROM nowhere",
	}
	for _, q := range bad {
		_, err := c.Query(ctx, q, hub.QueryOptions{})
		WantCode(t, q, err, hub.CodeArgumentInvalid)
	}
}
