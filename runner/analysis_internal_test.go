package runner

import (
	"strings"
	"testing"
)

// TestAnalysisVerdict: the floor holds unless the control misses it too;
// the batch may trail its control by maxDegradation at most.
func TestAnalysisVerdict(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	for _, tc := range []struct {
		name         string
		devices      int
		batch, floor float64
		hasControl   bool
		control      *float64
		maxDeg       float64
		pass         bool
		reason       string
	}{
		{"no control, over the floor", 10, 0.9, 0.9, false, nil, 0, true, "at least 90.0%"},
		{"no control, under the floor", 10, 0.8, 0.9, false, nil, 0, false, "failed"},
		{"trails the control within bounds", 10, 0.9, 0, true, f(0.95), 0.05, true, "95.0%"},
		{"trails the control too far", 10, 0.8, 0, true, f(0.95), 0.05, false, "5.0 points worse"},
		{"under a floor the control clears", 10, 0.88, 0.9, true, f(0.92), 0.05, false, "control cohort clears"},
		{"under a floor the control misses too", 10, 0.5, 0.9, true, f(0.5), 0.05, true, "not the update's"},
		{"no control device left", 10, 0.5, 0, true, nil, 0.05, true, "no control device"},
		{"no control device left, under an explicit floor", 10, 0.5, 0.9, true, nil, 0.05, false, "no control device"},
		{"nothing to analyse", 0, 0, 1, false, nil, 0, true, "no device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pass, reason := analysisVerdict(tc.devices, tc.batch, tc.floor, tc.hasControl, tc.control, tc.maxDeg)
			if pass != tc.pass || !strings.Contains(reason, tc.reason) {
				t.Errorf("verdict %v %q, want %v and %q", pass, reason, tc.pass, tc.reason)
			}
		})
	}
}
