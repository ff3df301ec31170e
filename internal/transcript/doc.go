// Package transcript is the CLI's behaviour on record: testdata/*.txtar
// are testscript transcripts that run the iotjobs binary, command by
// command, and state what it prints and the exit code of every run. The
// package has no code of its own; see testdata/README.md for how to run
// and extend the transcripts.
package transcript
