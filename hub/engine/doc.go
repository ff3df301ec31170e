// Package engine is the one jobs engine of iotjobs: device registry, twins,
// queries, direct methods and the jobs scheduler and executor, implementing
// [hub.Client] in-process, and the CA certificates of X.509 devices
// ([hub.Certificates]). `hub serve`, the embedded default and the
// dry-run all run this code; only the Store, the Clock and the DeviceBus
// they give it differ.
package engine
