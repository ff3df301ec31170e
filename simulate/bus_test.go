package simulate_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/simulate"
)

const degradeFleet = `
version: 1
seed: 3
groups:
  - ids: "upd-{n:02}"
    count: 10
    reported: {firmware: "2.3.9"}
    desired: {report: true}
    degrade: {when: {firmware: "2.4.1"}, after: 10m, fraction: 30%, report: {health: {crashes: 5}}}
  - ids: "inc-{n}"
    count: 5
    degrade: {after: 1h, fraction: 40%, report: {health: {incident: true}}}
`

// TestBusDegrade runs the in-process bus under the real engine (memstore)
// on a virtual clock, in a synctest bubble so that "every device has done
// what it does at this instant" is synctest.Wait: a degradation that waits
// for an update fires its delay after the device echoed the update, for
// exactly the chosen devices, and once; an incident fires at its delay
// after the bus was made, for exactly its chosen devices.
func TestBusDegrade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fl, ds := simulate.Parse("fleet.yaml", []byte(degradeFleet))
		if ds.HasErrors() {
			t.Fatal(ds)
		}
		devs := fl.Devices()
		t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		clk := clock.NewVirtual(t0)
		e, err := simulate.NewHub(ctx, devs, clk, simulate.HubOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var chosenUpd, chosenInc, upd []string
		for _, d := range devs {
			isUpd := d.ID[:3] == "upd"
			if isUpd {
				upd = append(upd, d.ID)
			}
			switch {
			case d.Degrade != nil && isUpd:
				chosenUpd = append(chosenUpd, d.ID)
			case d.Degrade != nil:
				chosenInc = append(chosenInc, d.ID)
			}
		}
		if len(chosenUpd) != 3 || len(chosenInc) != 2 {
			t.Fatalf("chosen %v and %v, want 3 (30%% of 10) and 2 (40%% of 5)", chosenUpd, chosenInc)
		}
		// degraded is the devices whose twins report health, in fleet order.
		degraded := func() []string {
			t.Helper()
			var ids []string
			for _, d := range devs {
				tw, err := e.GetTwin(ctx, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if tw.Properties.Reported["health"] != nil {
					ids = append(ids, d.ID)
				}
			}
			return ids
		}

		// The update: every upd device echoes firmware 2.4.1 at once.
		clk.AdvanceTo(t0.Add(time.Minute))
		for _, id := range upd {
			if _, err := e.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{
				Desired: map[string]any{"firmware": "2.4.1"}}}, "*"); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		for _, id := range upd {
			tw, _ := e.GetTwin(ctx, id)
			if tw.Properties.Reported["firmware"] != "2.4.1" {
				t.Fatalf("%s reports firmware %v, want the echo of 2.4.1", id, tw.Properties.Reported["firmware"])
			}
		}
		clk.AdvanceTo(t0.Add(11*time.Minute - time.Nanosecond))
		synctest.Wait()
		if got := degraded(); len(got) != 0 {
			t.Fatalf("degraded before 10 minutes after the update: %v", got)
		}
		clk.AdvanceTo(t0.Add(11 * time.Minute))
		synctest.Wait()
		if got := degraded(); !slices.Equal(got, chosenUpd) {
			t.Fatalf("degraded 10 minutes after the update: %v, want the chosen %v", got, chosenUpd)
		}
		tw, _ := e.GetTwin(ctx, chosenUpd[0])
		if h, _ := tw.Properties.Reported["health"].(map[string]any); h["crashes"] != 5.0 {
			t.Errorf("%s reports health %v, want the fleet file's {crashes: 5}", chosenUpd[0], tw.Properties.Reported["health"])
		}

		// Once: echoing the firmware again starts nothing new.
		if _, err := e.UpdateTwin(ctx, chosenUpd[0], &hub.TwinPatch{Properties: &hub.Properties{
			Desired: map[string]any{"firmware": "2.4.1", "mode": "night"}}}, "*"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		before, _ := e.GetTwin(ctx, chosenUpd[0])
		clk.AdvanceTo(t0.Add(59 * time.Minute))
		synctest.Wait()
		after, _ := e.GetTwin(ctx, chosenUpd[0])
		if before.Properties.Reported["mode"] != "night" || after.Properties.Reported["$version"] != before.Properties.Reported["$version"] {
			t.Errorf("reported $version %v → %v (mode %v): the degradation fired again",
				before.Properties.Reported["$version"], after.Properties.Reported["$version"], before.Properties.Reported["mode"])
		}

		// The incident: an hour after the bus was made.
		if got := degraded(); !slices.Equal(got, chosenUpd) {
			t.Fatalf("degraded before the incident: %v", got)
		}
		clk.AdvanceTo(t0.Add(time.Hour))
		synctest.Wait()
		want := slices.Concat(chosenUpd, chosenInc)
		if got := degraded(); !slices.Equal(got, want) {
			t.Fatalf("degraded after the incident: %v, want %v", got, want)
		}
		if _, ok := clk.Peek(); ok {
			t.Errorf("a timer is still pending after every degradation fired")
		}
	})
}
