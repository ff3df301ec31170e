// Package runner executes a plan's steps on a hub and monitors them: it
// creates one hub job per step, follows each to a terminal status through
// [hub.Client.WatchJob] (no fixed-interval sleeps where the hub can tell
// sooner), collects every device's result, judges the step against its
// success criteria and builds the versioned JSON report. It sees the hub
// only through [hub.Client] and time only through a [clock.Clock], so the
// same code runs against our hub, an Azure IoT Hub and the dry-run's
// simulated hub.
package runner
