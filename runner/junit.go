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
		case s.Status != "completed":
			step.Failure = &junitMessage{Message: s.Reason, Type: s.Status, Text: stepDetail(s)}
		}
		suite.Cases = append(suite.Cases, step)
		for _, d := range s.Devices {
			c := junitCase{ClassName: class, Name: d.DeviceID, Time: "0"}
			if !d.Succeeded {
				c.Failure = &junitMessage{Message: deviceFailure(d), Type: d.Status}
			}
			suite.Cases = append(suite.Cases, c)
		}
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

func seconds(s float64) string { return fmt.Sprintf("%.3f", max(s, 0)) }

// stepDetail is the body of a failed step's testcase: its numbers.
func stepDetail(s *StepReport) string {
	var b strings.Builder
	st := s.DeviceJobStatistics
	fmt.Fprintf(&b, "devices %d, succeeded %d, failed %d", len(s.Devices), st.SucceededCount, st.FailedCount)
	if s.Success != nil {
		fmt.Fprintf(&b, "; success rate %.1f%% (needs %.1f%%)", 100*s.Success.SuccessRate, 100*s.Success.MinSuccessRate)
	}
	if a := s.Abort; a != nil {
		fmt.Fprintf(&b, "; abort: %d of %d executed failed (threshold %.1f%% from %d on), tripped %v", a.Failed, a.Executed, 100*a.FailureRate, a.MinExecuted, a.Tripped)
	}
	return b.String()
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
