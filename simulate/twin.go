package simulate

// A simulated device and its twin over MQTT.
//
// A device that connects (the first time, or again after a reboot, a flap
// or a hub restart; not for a token renewal, which keeps the session)
// behaves like a device that rebooted, not one that was reflashed: it
// reads its twin first, keeps the reported values the twin holds (a
// firmware the hub saw it update to stays) and reports its fleet file's
// values only for the properties the twin lacks, so a device never seen
// before reports them all. It then converges to the desired properties
// it missed while away, if it echoes desired patches. Without a twin (the
// GET fails or times out) it reports its fleet values, as before there was
// this reconcile, and counts an error.
//
// The device keeps its own view of what it reported (reported), which its
// degradation's condition is checked against after every patch it sends
// and after every reconcile, and the desired echoes it owes (echoes), so
// that converging does not echo twice what it is about to echo anyway.
//
// Reactions the device owes the hub (a desired echo waiting for its delay,
// a method answer waiting for its latency) are counted in
// Sim.reactions, so that Settle can wait for them before the fleet
// closes. Degradations are not: they may be hours away.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// twinTimeout bounds a device's twin GET: a hub that has not answered by
// then is taken as one that will not.
const twinTimeout = 30 * time.Second

// twinDoc is the hub's answer to a twin GET, as the Azure device SDKs get
// it: each section with its "$version".
type twinDoc struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// getTwin reads the device's twin over its connection.
func (d *simDevice) getTwin(ctx context.Context) (twinDoc, error) {
	timeout := twinTimeout
	if d.sim.opts.TwinTimeout > 0 {
		timeout = d.sim.opts.TwinTimeout
	}
	ctx, cancel := d.sim.opts.Clock.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := d.request(ctx, mqttproto.TwinGetTopic, nil)
	if err != nil {
		return twinDoc{}, fmt.Errorf("get twin of %s: %w", d.spec.ID, err)
	}
	if r.status != 200 {
		return twinDoc{}, fmt.Errorf("get twin of %s: hub answered %d: %s", d.spec.ID, r.status, r.payload)
	}
	var doc twinDoc
	if err := json.Unmarshal(r.payload, &doc); err != nil {
		return twinDoc{}, fmt.Errorf("get twin of %s: %w", d.spec.ID, err)
	}
	return doc, nil
}

// reconcile is what the device does once connected; see the top of this
// file. Its error is a failure to report the fleet values the twin lacks;
// a twin that cannot be read is counted and logged, not returned.
func (d *simDevice) reconcile(ctx context.Context) error {
	tw, getErr := d.getTwin(ctx)
	fill := d.spec.Reported
	var known map[string]any // the twin's reported properties once fill is reported
	if getErr != nil {
		d.sim.errors.Add(1)
		// Debug, as the other per-device failures: after a hub restart
		// a whole fleet may fail at once, and Stats counts them.
		d.sim.opts.Logger.Debug("read twin at connect; reporting the fleet file's values", "device", d.spec.ID, "err", getErr)
	} else {
		known = withoutMeta(tw.Reported)
		fill = nil
		for k, v := range d.spec.Reported {
			if _, ok := known[k]; !ok {
				if fill == nil {
					fill = map[string]any{}
				}
				fill[k] = v
			}
		}
		d.mu.Lock()
		d.reported = withoutMeta(tw.Reported)
		d.mu.Unlock()
	}
	if len(fill) > 0 {
		if err := d.report(ctx, fill); err != nil {
			return err
		}
	}
	if getErr == nil {
		maps.Copy(known, fill)
		d.converge(tw.Desired, known)
	}
	d.checkDegrade()
	d.mu.Lock()
	owed := d.degradeOwed
	d.degradeOwed = false
	d.mu.Unlock()
	if owed {
		d.reportAsync(d.spec.Degrade.Report)
	}
	return nil
}

// noteReported merges a patch the hub took into what the device knows it
// reported, and starts its degradation if the patch meets its condition.
func (d *simDevice) noteReported(patch map[string]any) {
	d.mu.Lock()
	if d.reported == nil {
		d.reported = map[string]any{}
	}
	mergeReported(d.reported, patch)
	d.mu.Unlock()
	d.checkDegrade()
}

// converge echoes, after the device's delay, the desired properties whose
// values differ from reported (the twin's, as the device just read it)
// with the echoes it already owes applied, so that a patch about to be
// echoed is not echoed twice. Only a device that echoes desired patches
// converges.
func (d *simDevice) converge(desired, reported map[string]any) {
	if d.spec.Desired == nil || !d.spec.Desired.Report {
		return
	}
	d.mu.Lock()
	if len(d.echoes) > 0 {
		view := maps.Clone(reported)
		for _, seq := range slices.Sorted(maps.Keys(d.echoes)) {
			mergeReported(view, d.echoes[seq])
		}
		reported = view
	}
	patch := differing(desired, reported)
	d.mu.Unlock()
	if patch != nil {
		d.echo(patch)
	}
}

// echo reports patch after the device's desired delay, as a reaction the
// device owes.
func (d *simDevice) echo(patch map[string]any) {
	d.mu.Lock()
	d.echoSeq++
	seq := d.echoSeq
	if d.echoes == nil {
		d.echoes = map[int]map[string]any{}
	}
	d.echoes[seq] = patch
	d.mu.Unlock()
	d.react(d.spec.Desired.Delay, func() {
		d.reportAsync(patch)
		// Owed until the hub answered: until then a twin read may not
		// show it yet.
		d.mu.Lock()
		delete(d.echoes, seq)
		d.mu.Unlock()
	})
}

// react runs f after dur on the clock, as a reaction the device owes the
// hub: Settle waits until it has run, or until the timer found the device
// closed.
func (d *simDevice) react(dur time.Duration, f func()) {
	r := &d.sim.reactions
	r.add()
	if dur <= 0 {
		defer r.done()
		f()
		return
	}
	d.sim.opts.Clock.AfterFunc(dur, func() {
		defer r.done()
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if !closed {
			f()
		}
	})
}

// startIncident schedules a degradation without a condition, which
// starts with the simulation (Connect).
func (d *simDevice) startIncident() {
	dg := d.spec.Degrade
	if dg == nil || dg.When != nil {
		return
	}
	d.mu.Lock()
	start := !d.degraded
	d.degraded = true
	d.mu.Unlock()
	if start {
		d.after(dg.After, d.degrade)
	}
}

// checkDegrade schedules the device's degradation once what it reported
// meets its condition; it fires once.
func (d *simDevice) checkDegrade() {
	dg := d.spec.Degrade
	if dg == nil || dg.When == nil {
		return
	}
	d.mu.Lock()
	start := !d.degraded && holdsAll(d.reported, dg.When)
	if start {
		d.degraded = true
	}
	d.mu.Unlock()
	if start {
		d.after(dg.After, d.degrade)
	}
}

// degrade sends the degradation's report, or, when the device is off line,
// leaves it owed to its next connect (reconcile), as a device would report
// its crashes once back.
func (d *simDevice) degrade() {
	d.mu.Lock()
	// Decided under mu, which reconcile takes after the device is up: the
	// report is either sent here or found owed there, never lost between.
	owed := !d.w.isUp()
	d.degradeOwed = d.degradeOwed || owed
	d.mu.Unlock()
	if !owed {
		d.reportAsync(d.spec.Degrade.Report)
	}
}

// reactions counts the reactions devices owe the hub, so that Settle can
// wait for them without polling: idle is closed whenever none is owed.
type reactions struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (r *reactions) add() {
	r.mu.Lock()
	if r.n == 0 {
		r.idle = make(chan struct{})
	}
	r.n++
	r.mu.Unlock()
}

func (r *reactions) done() {
	r.mu.Lock()
	if r.n--; r.n == 0 {
		close(r.idle)
	}
	r.mu.Unlock()
}

// wait returns once no reaction is owed, or ctx.Err() first.
func (r *reactions) wait(ctx context.Context) error {
	for {
		r.mu.Lock()
		n, idle := r.n, r.idle
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
			// More may have come meanwhile: look again.
		case <-ctx.Done():
			return fmt.Errorf("%d device reactions still pending: %w", n, ctx.Err())
		}
	}
}

// Settle lets the devices send what they owe the hub before the fleet
// closes, so that closing right after a job completes loses nothing (the
// hub may have published a desired patch the device has not echoed yet).
// Every connected device that echoes desired patches reads its twin on
// its own connection (behind any desired patch the hub published to it
// before) and converges to it, as at connect; then Settle waits until
// every reaction owed — desired echoes waiting for their delay, method
// answers waiting for their latency — has been sent, or until ctx ends.
// Degradations are not waited for. It returns an error when a twin could
// not be read (the device still had its chance to echo the patch itself)
// or ctx ended first. It must not be called concurrently with Close.
func (s *Sim) Settle(ctx context.Context) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	sem := make(chan struct{}, 64)
	for _, d := range s.devices {
		if d.spec.Desired == nil || !d.spec.Desired.Report || !d.w.isUp() {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			tw, err := d.getTwin(ctx)
			if err != nil {
				s.errors.Add(1)
				mu.Lock()
				if failed++; firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			d.converge(tw.Desired, withoutMeta(tw.Reported))
		}()
	}
	wg.Wait()
	var getErr error
	if failed > 0 {
		getErr = fmt.Errorf("settle: %d devices could not read their twin, e.g. %w", failed, firstErr)
	}
	if err := s.reactions.wait(ctx); err != nil {
		return errors.Join(getErr, fmt.Errorf("settle: %w", err))
	}
	return getErr
}
