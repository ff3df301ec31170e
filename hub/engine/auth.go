package engine

import (
	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// The rules of a device's authentication (sas, selfSigned,
// certificateAuthority), which create, update and bulk import share.

// checkAuth checks what a device's authentication says by itself, and
// normalises it: thumbprints to upper case, and a type inferred as
// Azure's SDKs do (selfSigned when a thumbprint is given). A type left
// "" is decided by resolveAuth. Empty keys are allowed (generated on
// create, kept on update).
func checkAuth(auth *hub.Authentication) error {
	tp := &auth.X509Thumbprint
	hasThumb := tp.PrimaryThumbprint != nil && *tp.PrimaryThumbprint != "" || tp.SecondaryThumbprint != nil && *tp.SecondaryThumbprint != ""
	if auth.Type == "" && hasThumb {
		auth.Type = hub.AuthSelfSigned
	}
	k := auth.SymmetricKey
	hasKey := k.PrimaryKey != "" || k.SecondaryKey != ""
	switch auth.Type {
	case "", hub.AuthSAS:
		if hasThumb {
			return hub.Errorf(hub.CodeArgumentInvalid, "a sas device has no x509Thumbprint: use authentication type selfSigned for a device with a certificate thumbprint")
		}
	case hub.AuthSelfSigned, hub.AuthCertificateAuthority:
		if hasKey {
			return hub.Errorf(hub.CodeArgumentInvalid, "a %s device has no symmetricKey: leave the keys empty, or use authentication type sas", auth.Type)
		}
		if auth.Type == hub.AuthCertificateAuthority && hasThumb {
			return hub.Errorf(hub.CodeArgumentInvalid, "a certificateAuthority device has no x509Thumbprint: its certificate is checked against the hub's CA certificates")
		}
	case hub.AuthNone:
		return hub.Errorf(hub.CodeArgumentInvalid, "authentication type none is not supported; use sas, selfSigned or certificateAuthority")
	default:
		return hub.Errorf(hub.CodeArgumentInvalid, "authentication type %q is not one of sas, selfSigned, certificateAuthority", auth.Type)
	}
	for _, t := range []struct {
		name string
		p    **string
	}{{"primaryThumbprint", &tp.PrimaryThumbprint}, {"secondaryThumbprint", &tp.SecondaryThumbprint}} {
		if *t.p == nil || **t.p == "" {
			*t.p = nil
			continue
		}
		n, err := hub.NormalizeThumbprint(t.name, **t.p)
		if err != nil {
			return err
		}
		*t.p = &n
	}
	if k.PrimaryKey != "" {
		if err := validKey("primaryKey", k.PrimaryKey); err != nil {
			return err
		}
	}
	if k.SecondaryKey != "" {
		if err := validKey("secondaryKey", k.SecondaryKey); err != nil {
			return err
		}
	}
	return nil
}

// resolveAuth returns the authentication a device gets from req, a
// request's authentication that checkAuth passed, given its current one
// (nil on create). A type left "" keeps the current type (sas on
// create); empty keys of a sas device are kept, or generated; a
// selfSigned device keeps its thumbprints when req gives none. Switching
// type drops the old type's credentials: an X.509 device has no keys
// (null on the wire, as on Azure), a sas device no thumbprints.
func resolveAuth(req hub.Authentication, cur *hub.Authentication) (hub.Authentication, error) {
	typ := req.Type
	if typ == "" && cur != nil {
		typ = cur.Type
	}
	if typ == "" {
		typ = hub.AuthSAS
	}
	curType := ""
	if cur != nil {
		curType = cmpOr(cur.Type, hub.AuthSAS)
	}
	out := hub.Authentication{Type: typ}
	k := req.SymmetricKey
	switch typ {
	case hub.AuthSAS:
		if curType == hub.AuthSAS {
			// A sas device keeps the keys the update leaves out, even
			// none (a dry-run's simulated devices have none).
			k.PrimaryKey = cmpOr(k.PrimaryKey, cur.SymmetricKey.PrimaryKey)
			k.SecondaryKey = cmpOr(k.SecondaryKey, cur.SymmetricKey.SecondaryKey)
		} else {
			for _, p := range []*string{&k.PrimaryKey, &k.SecondaryKey} {
				if *p == "" {
					*p = sas.GenerateKey()
				}
			}
		}
		out.SymmetricKey = k
	case hub.AuthSelfSigned, hub.AuthCertificateAuthority:
		if k.PrimaryKey != "" || k.SecondaryKey != "" {
			return out, hub.Errorf(hub.CodeArgumentInvalid, "a %s device has no symmetricKey: leave the keys empty, or use authentication type sas", typ)
		}
		if typ == hub.AuthCertificateAuthority {
			break
		}
		out.X509Thumbprint = req.X509Thumbprint
		if out.X509Thumbprint.PrimaryThumbprint == nil && out.X509Thumbprint.SecondaryThumbprint == nil && curType == hub.AuthSelfSigned {
			out.X509Thumbprint = cur.X509Thumbprint
		}
		if out.X509Thumbprint.PrimaryThumbprint == nil {
			return out, hub.Errorf(hub.CodeArgumentInvalid, "a selfSigned device needs x509Thumbprint.primaryThumbprint: the SHA-1 or SHA-256 thumbprint of its certificate")
		}
	}
	return out, nil
}

// cmpOr is cmp.Or for strings: a, or b when a is empty.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// cloneAuth copies a with its thumbprints, which checkAuth rewrites: the
// caller's device is not changed.
func cloneAuth(a hub.Authentication) hub.Authentication {
	for _, p := range []**string{&a.X509Thumbprint.PrimaryThumbprint, &a.X509Thumbprint.SecondaryThumbprint} {
		if *p != nil {
			s := **p
			*p = &s
		}
	}
	return a
}
