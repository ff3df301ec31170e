package sas

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Rights are what a shared access policy's tokens may do: Azure's
// permissions. A new hub's policies have iothubowner: all four; service:
// ServiceConnect; device: DeviceConnect; registryRead: RegistryRead;
// registryReadWrite: RegistryRead and RegistryWrite.
type Rights uint8

const (
	// RegistryRead reads device identities.
	RegistryRead Rights = 1 << iota
	// RegistryWrite creates, changes and deletes device identities.
	RegistryWrite
	// ServiceConnect uses the service API: twins, methods, jobs, queries.
	ServiceConnect
	// DeviceConnect connects as any device (the token's sr narrows it to
	// one): what a protocol gateway or a token service holds.
	DeviceConnect
)

var rightNames = []string{"RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"}

// String lists the rights by Azure's names, comma-separated, as Azure's
// portal and resource manager write them; "none" for none.
func (r Rights) String() string {
	var names []string
	for i, n := range rightNames {
		if r&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Policy is a shared access policy: its key (base64) and its rights.
type Policy struct {
	Key    string
	Rights Rights
}

// VerifyPolicy checks t as Azure checks a token that names a shared
// access policy, for the service API and for devices alike. It returns
// nil when all of these hold, and otherwise an error that says which does
// not:
//   - t names a policy (skn) that policies knows;
//   - sr's host is one of hosts, ignoring case (no hosts: any);
//   - sr's path is a by-segment prefix of path, the resource used (a
//     token for "{host}" covers every resource, one for
//     "{host}/devices/d1" covers "devices/d1" but not "devices/d10");
//   - the signature verifies with the policy's key and t has not expired
//     at now (errors wrapping ErrInvalidSignature or ErrExpired), so a
//     token that names a policy but is signed with any other key, a
//     device's included, is refused;
//   - the policy has every right in need.
func (t *Token) VerifyPolicy(policies func(name string) (Policy, bool), need Rights, hosts []string, path string, now time.Time) error {
	if t.KeyName == "" {
		return errors.New("token names no shared access policy (skn)")
	}
	p, ok := policies(t.KeyName)
	if !ok {
		return fmt.Errorf("unknown shared access policy %q", t.KeyName)
	}
	if !hostAllowed(t.Host(), hosts) {
		return fmt.Errorf("token is for host %q, not this hub (%s)", t.Host(), strings.Join(hosts, ", "))
	}
	if _, covered, ok := strings.Cut(t.Resource, "/"); ok && !segmentPrefix(strings.Trim(covered, "/"), strings.Trim(path, "/")) {
		return fmt.Errorf("token resource %q does not cover %s", t.Resource, path)
	}
	if err := t.Verify(p.Key, now); err != nil {
		return fmt.Errorf("policy %q: %w", t.KeyName, err)
	}
	if missing := need &^ p.Rights; missing != 0 {
		return fmt.Errorf("policy %q does not grant %s", t.KeyName, missing)
	}
	return nil
}

// hostAllowed reports whether host is one of hosts, ignoring case; any
// host is when there are none.
func hostAllowed(host string, hosts []string) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// segmentPrefix reports whether prefix is path or a leading run of its
// "/"-separated segments.
func segmentPrefix(prefix, path string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}
