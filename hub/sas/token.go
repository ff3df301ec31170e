package sas

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of Verify; compare with errors.Is.
var (
	ErrInvalidSignature = errors.New("signature does not match")
	ErrExpired          = errors.New("token expired")
)

const prefix = "SharedAccessSignature "

// Sign returns a token "SharedAccessSignature sr=...&sig=...&se=...[&skn=...]"
// in the Node SDK's parameter order. resourceURI is used exactly as given
// (the caller encodes it) both in sr and in the string to sign; key is the
// base64 key; keyName, when not empty, becomes skn.
func Sign(resourceURI, keyName, key string, expiry time.Time) (string, error) {
	k, err := decodeKey(key)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := url.QueryEscape(signature(k, resourceURI, se))
	s := prefix + "sr=" + resourceURI + "&sig=" + sig
	if keyName != "" {
		s += "&skn=" + keyName
	}
	return s + "&se=" + se, nil
}

// ServiceToken returns a shared access policy token for the hub host, with
// sr = host unencoded, as the Node service SDK sends it.
func ServiceToken(host, keyName, key string, expiry time.Time) (string, error) {
	return Sign(host, keyName, key, expiry)
}

// DeviceToken returns a device-key token for host/devices/deviceID, with sr
// encoded like JavaScript's strict encodeURIComponent, as the Node device SDK
// sends it.
func DeviceToken(host, deviceID, key string, expiry time.Time) (string, error) {
	return Sign(escape(host+"/devices/"+deviceID, upperHex), "", key, expiry)
}

// GenerateKey returns a new random key: 32 bytes, base64.
func GenerateKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on supported platforms (crypto/rand doc)
	return base64.StdEncoding.EncodeToString(b)
}

// Token is a parsed shared access signature.
type Token struct {
	// Resource is the decoded sr; RawResource is sr as it was sent, which
	// is what the signature covers.
	Resource    string
	RawResource string
	// Signature is the decoded sig (base64).
	Signature string
	// KeyName is skn, empty for device-key tokens.
	KeyName string
	Expiry  time.Time

	rawExpiry string // se as sent, which is what the signature covers
}

// ParseToken parses "SharedAccessSignature k=v&k=v..." with sr, sig and se
// required and skn optional, in any order.
func ParseToken(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return nil, fmt.Errorf("sas token: does not start with %q", prefix)
	}
	t := &Token{}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(strings.TrimSpace(s[len(prefix):]), "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("sas token: %q is not key=value", pair)
		}
		if seen[k] {
			return nil, fmt.Errorf("sas token: %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "sr":
			d, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("sas token: sr: %w", err)
			}
			t.RawResource, t.Resource = v, d
		case "sig":
			d, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("sas token: sig: %w", err)
			}
			t.Signature = d
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("sas token: se %q is not a Unix time in seconds", v)
			}
			t.Expiry, t.rawExpiry = time.Unix(n, 0).UTC(), v
		case "skn":
			d, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("sas token: skn: %w", err)
			}
			t.KeyName = d
		default:
			return nil, fmt.Errorf("sas token: unknown parameter %q", k)
		}
	}
	for _, k := range []string{"sr", "sig", "se"} {
		if !seen[k] {
			return nil, fmt.Errorf("sas token: missing %s", k)
		}
	}
	return t, nil
}

// Verify checks the signature with key (base64) and that the token has not
// expired at now. The signature is recomputed over sr as sent; if that does
// not match, over sr re-encoded with upper- and then lower-case hex, which
// covers encoders other than the Node SDK's. It returns an error wrapping
// ErrInvalidSignature or ErrExpired.
func (t *Token) Verify(key string, now time.Time) error {
	k, err := decodeKey(key)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	se := t.rawExpiry
	if se == "" {
		se = strconv.FormatInt(t.Expiry.Unix(), 10)
	}
	ok := false
	for _, sr := range []string{t.RawResource, escape(t.Resource, upperHex), escape(t.Resource, lowerHex)} {
		if hmac.Equal([]byte(signature(k, sr, se)), []byte(t.Signature)) {
			ok = true
			break
		}
	}
	if !ok {
		return fmt.Errorf("verify %q: %w", t.Resource, ErrInvalidSignature)
	}
	if !now.Before(t.Expiry) {
		return fmt.Errorf("verify %q: %w at %s", t.Resource, ErrExpired, t.Expiry.Format(time.RFC3339))
	}
	return nil
}

// Host returns the host part of the decoded resource URI.
func (t *Token) Host() string {
	h, _, _ := strings.Cut(t.Resource, "/")
	return h
}

// DeviceID returns id when the resource URI is "host/devices/{id}", and ""
// otherwise (service tokens, module tokens).
func (t *Token) DeviceID() string {
	_, path, ok := strings.Cut(t.Resource, "/")
	if !ok {
		return ""
	}
	id, ok := strings.CutPrefix(strings.TrimSuffix(path, "/"), "devices/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}

// ClientID returns the MQTT client id a device or module token is for:
// the device id of "host/devices/{id}", "{deviceId}/{moduleId}" of
// "host/devices/{deviceId}/modules/{moduleId}", and "" otherwise.
func (t *Token) ClientID() string {
	if id := t.DeviceID(); id != "" {
		return id
	}
	_, path, _ := strings.Cut(t.Resource, "/")
	rest, ok := strings.CutPrefix(strings.TrimSuffix(path, "/"), "devices/")
	if !ok {
		return ""
	}
	dev, mod, ok := strings.Cut(rest, "/modules/")
	if !ok || dev == "" || mod == "" || strings.Contains(dev, "/") || strings.Contains(mod, "/") {
		return ""
	}
	return dev + "/" + mod
}

// signature is base64(HMAC-SHA256(key, sr + "\n" + se)).
func signature(key []byte, sr, se string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr + "\n" + se))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

const (
	upperHex = "0123456789ABCDEF"
	lowerHex = "0123456789abcdef"
)

// escape percent-encodes every byte but ALPHA, DIGIT and "-_.~", like the
// Node SDK's encodeUriComponentStrict, with the given hex digits.
func escape(s, hex string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
