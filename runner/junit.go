package runner

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML: one testsuite per step, one testcase per device of the step
// (failed when the runner's verdict is not succeeded), and one testcase
// named "(step)" that carries the step's own verdict: its success
// criteria, an abort, a skip and why. CI systems show it as they show
// test results.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Skipped   *junitMessage `xml:"skipped"`
	// SystemOut carries what a passing case has to say (a policy's
	// advisory, an override's reason).
	SystemOut string `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: r.Plan.Name, Time: seconds(r.FinishedAt.Sub(r.StartedAt).Seconds())}
	for _, s := range r.Steps {
		suite := junitSuite{Name: s.Name, Time: "0"}
		if s.StartTime != nil && s.EndTime != nil {
			suite.Time = seconds(s.EndTime.Sub(*s.StartTime).Seconds())
			suite.Timestamp = s.StartTime.UTC().Format("2006-01-02T15:04:05Z")
		}
		class := r.Plan.Name + "." + s.Name
		step := junitCase{ClassName: class, Name: "(step)", Time: suite.Time}
		switch {
		case s.Status == StepSkipped:
			step.Skipped = &junitMessage{Message: s.Reason}
		case s.Status != StepCompleted:
			step.Failure = &junitMessage{Message: s.Reason, Type: string(s.Status), Text: stepDetail(s)}
		}
		suite.Cases = append(suite.Cases, step)
		for _, d := range s.Devices {
			c := junitCase{ClassName: class, Name: d.DeviceID, Time: "0"}
			if !d.Succeeded {
				c.Failure = &junitMessage{Message: deviceFailure(d), Type: d.Status}
			}
			suite.Cases = append(suite.Cases, c)
		}
		suite.Cases = append(suite.Cases, rollbackCases(class, s.Rollback)...)
		for _, c := range suite.Cases {
			suite.Tests++
			switch {
			case c.Failure != nil:
				suite.Failures++
			case c.Skipped != nil:
				suite.Skipped++
			}
		}
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Skipped += suite.Skipped
		out.Suites = append(out.Suites, suite)
	}
	if r.Policy != nil {
		suite := policySuite(r.Plan.Name, r.Policy)
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Suites = append(out.Suites, suite)
	}
	if r.Error != "" && r.Status != StatusSucceeded {
		// Why the run ended as it did (an unreachable hub, an interrupt,
		// a stop before applying): a failure CI shows even when no step ran.
		suite := junitSuite{Name: "(run)", Time: out.Time, Tests: 1, Failures: 1, Cases: []junitCase{{ClassName: r.Plan.Name, Name: "(run)", Time: out.Time,
			Failure: &junitMessage{Message: r.Error, Type: r.Status}}}}
		out.Tests++
		out.Failures++
		out.Suites = append(out.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// policySuite is the policy check as a suite: a case per violation,
// failed when it stops the plan, passing with what it says (and an
// override's reason) when not, so that CI shows both.
func policySuite(planName string, pr *PolicyReport) junitSuite {
	suite := junitSuite{Name: "(policy)", Time: "0"}
	class := planName + ".(policy)"
	if len(pr.Violations) == 0 {
		suite.Cases = append(suite.Cases, junitCase{ClassName: class, Name: "(policy) " + pr.File, Time: "0", SystemOut: pr.Result})
	}
	for _, v := range pr.Violations {
		c := junitCase{ClassName: class, Name: v.Rule + " at " + v.Position, Time: "0"}
		switch {
		case v.Overridden && pr.Override != nil:
			c.SystemOut = fmt.Sprintf("%s (soft): %s; overridden: %s", v.Rule, v.Message, pr.Override.Reason)
			if pr.Override.By != "" {
				c.SystemOut += " (by " + pr.Override.By + ")"
			}
		case v.Level == "advisory":
			c.SystemOut = fmt.Sprintf("%s (advisory): %s", v.Rule, v.Message)
		default:
			c.Failure = &junitMessage{Message: v.Message, Type: "policy " + v.Level}
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	return suite
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", max(s, 0)) }

// stepDetail is the body of a failed step's testcase: its numbers, in
// the words of the summary.
func stepDetail(s *StepReport) string {
	var b strings.Builder
	b.WriteString(s.Summary.String())
	if s.Success != nil {
		fmt.Fprintf(&b, "; success rate %.1f%% (needs %.1f%%)", 100*s.Success.SuccessRate, 100*s.Success.MinSuccessRate)
	}
	if a := s.Abort; a != nil {
		fmt.Fprintf(&b, "; abort: %d of %d started failed%s (threshold ", a.Failed, a.Executed, classList(a.ByClass))
		if a.Failures > 0 {
			fmt.Fprintf(&b, "%d devices", a.Failures)
		} else {
			fmt.Fprintf(&b, "%.1f%%", 100*a.FailureRate)
		}
		fmt.Fprintf(&b, " from %d on), tripped %v", a.MinExecuted, a.Tripped)
	}
	for _, an := range s.Analysis {
		if !an.Pass {
			fmt.Fprintf(&b, "; %s", an.Reason)
		}
	}
	if rb := s.Rollback; rb != nil && rb.Trigger != "" {
		fmt.Fprintf(&b, "; rolled back (%s): %d restored, %d conflicts, %d failed", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
	}
	return b.String()
}

// rollbackCases are a rollback's test cases: "(rollback)" with its
// verdict, and one per device it could not restore.
func rollbackCases(class string, rb *RollbackReport) []junitCase {
	if rb == nil || rb.Trigger == "" {
		return nil
	}
	c := junitCase{ClassName: class, Name: "(rollback)", Time: "0"}
	if rb.StartTime != nil && rb.EndTime != nil {
		c.Time = seconds(rb.EndTime.Sub(*rb.StartTime).Seconds())
	}
	verdict := fmt.Sprintf("rolled back (%s): %d restored, %d conflicts, %d failed", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
	if rb.Conflicts+rb.Failed > 0 {
		c.Failure = &junitMessage{Message: verdict, Type: "rollback"}
	}
	out := []junitCase{c}
	for _, d := range rb.Devices {
		if d.Status != RolledBack {
			out = append(out, junitCase{ClassName: class, Name: d.DeviceID + " (rollback)", Time: "0",
				Failure: &junitMessage{Message: deviceFailure(d), Type: d.Status}})
		}
	}
	return out
}

// deviceFailure says why a device did not succeed.
func deviceFailure(d DeviceResult) string {
	switch {
	case d.Error != nil:
		return d.Error.Code + ": " + d.Error.Description
	case d.Outcome != nil && d.Outcome.DeviceMethodResponse != nil:
		return fmt.Sprintf("the device answered with status %d", d.Outcome.DeviceMethodResponse.Status)
	}
	return "ended " + d.Status
}
