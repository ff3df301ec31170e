package store

import "github.com/iotjobs/iotjobs/hub"

// IdentitySnapshot is a device's identity before an update function ran,
// to tell whether it changed (a twin update leaves it alone, and then a
// store keeps its stored identity instead of encoding it again).
type IdentitySnapshot struct {
	d                      hub.Device
	reason, thumb1, thumb2 string
}

// SnapshotIdentity takes d's identity, pointed-to strings included.
func SnapshotIdentity(d *Device) IdentitySnapshot {
	s := IdentitySnapshot{d: d.Device}
	s.reason, s.thumb1, s.thumb2 = deref(d.StatusReason), deref(d.Authentication.X509Thumbprint.PrimaryThumbprint), deref(d.Authentication.X509Thumbprint.SecondaryThumbprint)
	return s
}

// Same reports whether d's identity is as it was, pointed-to strings
// included.
func (s IdentitySnapshot) Same(d *Device) bool {
	return d.Device == s.d && deref(d.StatusReason) == s.reason &&
		deref(d.Authentication.X509Thumbprint.PrimaryThumbprint) == s.thumb1 &&
		deref(d.Authentication.X509Thumbprint.SecondaryThumbprint) == s.thumb2
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
