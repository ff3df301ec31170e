package hub

import (
	"strings"
	"testing"
)

func TestCheckIDs(t *testing.T) {
	tests := []struct {
		id          string
		device, job bool   // valid as a device id, as a job id
		in          string // substring of the message when invalid
	}{
		{"dev1", true, true, ""},
		{"azAZ09-:.+_*!(),=@;$'", true, true, ""},
		{"a%b", true, false, `'%'`},
		{"a#b", true, false, `'#'`},
		{"a?b", true, false, `'?'`},
		{strings.Repeat("x", MaxIDLength), true, true, ""},
		{strings.Repeat("x", MaxIDLength+1), false, false, "129 characters"},
		{strings.Repeat("x", 10000), false, false, "10000 characters"},
		{"", false, false, "empty"},
		{"\x00", false, false, "byte 0x00"},
		{"a\x01b", false, false, "byte 0x01 at byte 1"},
		{"a\nb", false, false, "byte 0x0A"},
		{"a\x7fb", false, false, "byte 0x7F"},
		{"a b", false, false, "a space"},
		{"a/b", false, false, `'/'`},
		{"a\\b", false, false, `'\\'`},
		{"\xff", false, false, "byte 0xFF"},
		{"é", false, false, "byte 0xC3"},
		{`a"b`, false, false, `'"'`},
		{"a&b", false, false, `'&'`},
		{"a<b>", false, false, `'<'`},
		{"a[b]", false, false, `'['`},
		{"a{b}", false, false, `'{'`},
		{"a~b", false, false, `'~'`},
		{"a`b", false, false, "'`'"},
		{"a|b", false, false, `'|'`},
		{"a^b", false, false, `'^'`},
	}
	for _, tc := range tests {
		for _, c := range []struct {
			what  string
			check func(string) error
			valid bool
		}{{"device id", CheckDeviceID, tc.device}, {"job id", CheckJobID, tc.job}} {
			err := c.check(tc.id)
			if c.valid {
				if err != nil {
					t.Errorf("%s %q: %v, want valid", c.what, tc.id, err)
				}
				continue
			}
			if ErrorCode(err) != CodeArgumentInvalid || !strings.Contains(ErrorMessage(err), tc.in) || !strings.Contains(ErrorMessage(err), c.what) {
				t.Errorf("%s %q: %v, want ArgumentInvalid naming the %s and %s", c.what, tc.id, err, c.what, tc.in)
			}
			if len(ErrorMessage(err)) > 400 {
				t.Errorf("%s %q: message of %d bytes", c.what, tc.id, len(ErrorMessage(err)))
			}
		}
	}
}

func TestCheckPolicyName(t *testing.T) {
	for _, ok := range []string{"iothubowner", "service", "registryReadWrite", "a-b.c_d", strings.Repeat("p", 64)} {
		if err := CheckPolicyName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\x00", "a/b", "a%20b", strings.Repeat("p", 65), "é"} {
		if err := CheckPolicyName(bad); ErrorCode(err) != CodeArgumentInvalid {
			t.Errorf("%q: %v, want ArgumentInvalid", bad, err)
		}
	}
}

func TestParseETag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`*`, "*"},
		{`"*"`, "*"},
		{` "*" `, "*"},
		{`"AAAAAAAAAAE="`, "AAAAAAAAAAE="},
		{`AAAAAAAAAAE=`, "AAAAAAAAAAE="},
		{`MQ==`, "MQ=="},
		{`"a+/b"`, "a+/b"},
		{"\"" + strings.Repeat("A", MaxETagLength) + "\"", strings.Repeat("A", MaxETagLength)},
	} {
		got, err := ParseETag(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseETag(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", " ", `""`, `"`, `"a`, `a"`, `"a b"`, "a\tb", "a\x00", "a\x7f", "\"\xc3\xa9\"", `W/"a"`, `"a", "b"`, `a,b`, `"a"b"`,
		strings.Repeat("A", MaxETagLength+1)} {
		if got, err := ParseETag(bad); ErrorCode(err) != CodeArgumentInvalid {
			t.Errorf("ParseETag(%q) = %q, %v; want ArgumentInvalid", bad, got, err)
		}
	}
	if got, err := ParseOptionalETag(""); got != "" || err != nil {
		t.Errorf("ParseOptionalETag(\"\") = %q, %v", got, err)
	}
	if _, err := ParseOptionalETag(`""`); err == nil {
		t.Error(`ParseOptionalETag("\"\"") accepted an empty quoted etag`)
	}
}
