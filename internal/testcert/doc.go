// Package testcert makes TLS configurations for tests: a fresh
// self-signed certificate for 127.0.0.1 and a client configuration that
// trusts it. It is imported by tests only.
package testcert
