package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
)

// Changes counts what a plan would do, by its dry-run report: the twins
// its twin steps would patch (not those that comply already) and the
// devices its method steps would call.
func (rep *Report) Changes() int {
	n := 0
	for _, s := range rep.Steps {
		if pv := s.Preview; pv != nil {
			n += pv.Matched
			if s.Type == string(hub.JobUpdateTwin) {
				n -= pv.Noop
			}
		}
	}
	return n
}

// MergeDryRun is the dry-run report: the simulated run's, each step with
// what was read from the hub (its preview), failed where the pre-flight
// fails. A simulation that says what it was played against (Simulation)
// keeps its hub: the devices it played are not necessarily the read hub's.
func MergeDryRun(preview, sim *Report) (*Report, error) {
	sim.DryRun = true
	if sim.Simulation == nil {
		sim.Hub = preview.Hub
	}
	for i, s := range sim.Steps {
		if i < len(preview.Steps) && preview.Steps[i].Name == s.Name {
			s.Preview = preview.Steps[i].Preview
			if pf := s.Preview.Preflight; pf != nil && !pf.OK {
				s.Status, s.Reason = StepFailed, pf.Message
			}
		}
	}
	if failed := sim.FailedSteps(); len(failed) > 0 {
		sim.Status = StatusFailed
		return sim, &StepFailedError{Steps: failed}
	}
	sim.Status = StatusSucceeded
	return sim, nil
}

// WritePreview prints a dry-run report for people: what it was played
// against and what it assumed, then per step what was read from the hub
// and, when simulated, what the simulation predicts.
func (rep *Report) WritePreview(w io.Writer) {
	against, simulated, verdict := rep.Hub, false, rep.Status
	if sim := rep.Simulation; sim != nil {
		against, simulated = sim.Against, sim.Simulated
	}
	if !simulated {
		// Only a pre-flight can fail without a simulation; nothing else
		// was predicted.
		verdict = "not simulated"
		if rep.Status == StatusFailed {
			verdict += "; a pre-flight fails"
		}
	}
	fmt.Fprintf(w, "plan %s (dry run against %s): %s\n", rep.Plan.Name, against, verdict)
	if sim := rep.Simulation; sim != nil && len(sim.Assumptions) > 0 {
		fmt.Fprintln(w, "\nAssumed:")
		for _, a := range sim.Assumptions {
			fmt.Fprintf(w, "  - %s\n", a)
		}
	}
	for _, s := range rep.Steps {
		pv := s.Preview
		if pv == nil {
			continue
		}
		fmt.Fprintf(w, "\nstep %s (%s): %d devices match %s", s.Name, s.Type, pv.Matched, s.QueryCondition)
		if len(pv.Sample) > 0 {
			more := ""
			if pv.Matched > len(pv.Sample) {
				more = ", …"
			}
			fmt.Fprintf(w, " (%s%s)", strings.Join(pv.Sample, ", "), more)
		}
		fmt.Fprintln(w)
		for _, d := range pv.TwinDiff {
			to, _ := json.Marshal(d.To)
			var from []string
			for _, f := range d.From {
				v, _ := json.Marshal(f.Value)
				if f.Value == "undefined" {
					v = []byte("undefined")
				}
				from = append(from, fmt.Sprintf("%d from %s", f.Count, v))
			}
			fmt.Fprintf(w, "  %s → %s: %d change", d.Path, to, d.Change)
			if len(from) > 0 {
				fmt.Fprintf(w, " (%s)", strings.Join(from, ", "))
			}
			fmt.Fprintf(w, ", %d comply\n", d.Comply)
		}
		if s.Type == string(hub.JobUpdateTwin) {
			fmt.Fprintf(w, "  %d twins comply with the whole patch already\n", pv.Noop)
		}
		writeStart(w, s, simulated)
		if pv.OnlyPassed {
			fmt.Fprintf(w, "  only on the devices that pass %s (the matched count is an upper bound)\n", strings.Join(pv.After, ", "))
		}
		for i, b := range pv.Timeline.Batches {
			switch {
			case i < len(s.Batches):
				// As played: each batch ends with its verify and analysis
				// before the pause and the next begin.
				played := s.Batches[i]
				fmt.Fprintf(w, "  batch %d: %d devices", i+1, played.Devices)
				if played.StartTime != nil {
					fmt.Fprintf(w, ", starts %s", played.StartTime.Format("2006-01-02 15:04:05 MST"))
				}
				if played.EndTime != nil {
					fmt.Fprintf(w, ", ends %s", played.EndTime.Format("15:04:05 MST"))
				}
				fmt.Fprintln(w)
			case simulated:
				fmt.Fprintf(w, "  batch %d: %d devices, not started\n", i+1, b.Devices)
			default:
				fmt.Fprintf(w, "  batch %d: %d devices, %s at the earliest\n", i+1, b.Devices, b.Start.Format("2006-01-02 15:04 MST"))
			}
		}
		if n := len(pv.Timeline.Occurrences); n > 0 {
			fmt.Fprintf(w, "  cron: %d occurrences in the next 7 days, first %s\n", n, pv.Timeline.Occurrences[0].Format("2006-01-02 15:04 MST"))
		}
		writeSafetyNet(w, s)
		if simulated && s.Status != StepPlanned {
			fmt.Fprintf(w, "  simulated: %s — %s", s.Status, s.Summary)
			if s.EndTime != nil {
				fmt.Fprintf(w, ", ends %s", s.EndTime.Format("2006-01-02 15:04 MST"))
			}
			fmt.Fprintln(w)
			if s.Reason != "" {
				fmt.Fprintf(w, "    %s\n", s.Reason)
			}
			for _, a := range s.Analysis {
				if !a.Pass && !strings.Contains(s.Reason, a.Reason) {
					fmt.Fprintf(w, "    %s\n", a.Reason)
				}
			}
			if rb := s.Rollback; rb != nil && rb.Trigger != "" {
				fmt.Fprintf(w, "  simulated rollback (%s): %d restored, %d conflicts, %d failed\n", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
			}
		}
		if n := len(s.Occurrences); n > 0 {
			fmt.Fprintf(w, "  simulated runs in the next 7 days (%d):\n", n)
			for i, o := range s.Occurrences {
				if i == 10 {
					fmt.Fprintf(w, "    … and %d more (--report lists all)\n", n-10)
					break
				}
				fmt.Fprintf(w, "    %s: %s — %d succeed, %d fail, %d no-op", o.ScheduledAt.Format("2006-01-02 15:04 MST"), o.Status, o.Succeeded, o.Failed, o.Noop)
				if o.EndTime != nil {
					fmt.Fprintf(w, ", ends %s", o.EndTime.Format("15:04 MST"))
				}
				if o.Reason != "" && o.Status != StepCompleted {
					fmt.Fprintf(w, " (%s)", o.Reason)
				}
				fmt.Fprintln(w)
			}
		}
		if pf := pv.Preflight; pf != nil {
			verdict := "ok"
			if !pf.OK {
				verdict = "FAILS"
			}
			fmt.Fprintf(w, "  pre-flight %s: %s\n", verdict, pf.Message)
		}
	}
}

// writeStart prints when a step starts, and why then: as simulated (the
// virtual clock's time its first job started) when the dry-run got that
// far, else the earliest its timeline allows.
func writeStart(w io.Writer, s *StepReport, simulated bool) {
	pv := s.Preview
	var why []string // besides the steps it runs after
	if len(pv.Timeline.Occurrences) > 0 {
		why = append(why, "its cron's next occurrence")
	}
	if win := pv.Window; win != nil && win.FromTag == "" {
		why = append(why, "its window "+win.String())
	}
	fromTag := ""
	if win := pv.Window; win != nil && win.FromTag != "" {
		fromTag = ", each device within its own window (" + win.FromTag + ")"
	}
	after := strings.Join(pv.After, ", ")
	switch {
	case simulated && s.StartTime != nil:
		if after != "" {
			why = append([]string{"after " + after}, why...)
		}
		fmt.Fprintf(w, "  starts %s%s%s\n", s.StartTime.UTC().Format("2006-01-02 15:04:05 MST"), because(why), fromTag)
	case after != "":
		// Its start depends on when the steps before it end, which only
		// a simulation that reaches it knows.
		fmt.Fprintf(w, "  starts after %s, at the earliest %s%s%s\n", after, pv.Timeline.Start.Format("2006-01-02 15:04 MST"), because(why), fromTag)
	default:
		fmt.Fprintf(w, "  starts %s%s%s\n", pv.Timeline.Start.Format("2006-01-02 15:04 MST"), because(why), fromTag)
	}
}

// because is " (why; why)", or "" for no reason.
func because(why []string) string {
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// writeSafetyNet prints what undoes a step, for the reviewer: per path
// a twin step sets, the values a rollback would put back and on how many
// devices (those it would change), or a method step's compensating method.
func writeSafetyNet(w io.Writer, s *StepReport) {
	rb := s.Rollback
	if rb == nil || len(rb.On) == 0 {
		return
	}
	on := strings.Join(rb.On, ", ")
	if rb.Method != nil {
		fmt.Fprintf(w, "  rollback on %s: calls %s on the devices whose call succeeded\n", on, rb.Method.Name)
		return
	}
	fmt.Fprintf(w, "  rollback on %s restores, etag-guarded:\n", on)
	for _, d := range s.Preview.TwinDiff {
		var parts []string
		for _, f := range d.From {
			if f.Value == "undefined" {
				parts = append(parts, fmt.Sprintf("deletes it on %d", f.Count))
				continue
			}
			v, _ := json.Marshal(f.Value)
			parts = append(parts, fmt.Sprintf("%s on %d", v, f.Count))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "    %s: %s\n", d.Path, strings.Join(parts, ", "))
		}
	}
}

// WriteText prints a drift check for people.
func (res *Compliance) WriteText(w io.Writer) {
	verdict := "compliant"
	if !res.Compliant {
		verdict = "drift"
	}
	fmt.Fprintf(w, "plan %s: %s\n", res.Plan.Name, verdict)
	for _, s := range res.Steps {
		fmt.Fprintf(w, "  step %s: %d of %d devices drift\n", s.Name, len(s.Drifting), s.Matched)
		for i, d := range s.Drifting {
			if i == 20 {
				fmt.Fprintf(w, "    … and %d more (-o json lists all)\n", len(s.Drifting)-20)
				break
			}
			why := strings.Join(d.Paths, ", ")
			if d.FailsVerify {
				why = strings.TrimPrefix(why+", fails verify", ", ")
			}
			fmt.Fprintf(w, "    %s: %s\n", d.DeviceID, why)
		}
	}
}
