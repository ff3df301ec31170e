// Package sas reads and writes Azure IoT Hub credentials: connection strings
// ("HostName=...;SharedAccessKeyName=...;SharedAccessKey=...") and shared
// access signature tokens ("SharedAccessSignature sr=...&sig=...&se=..."),
// signed and verified exactly as the official Node SDKs do, so that their
// tokens verify here and ours verify at Azure.
package sas
