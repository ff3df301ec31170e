package simulate

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan/diag"
)

// MaxDevices bounds the number of devices in one fleet file (and so in one
// group). It keeps a typo such as count: 10000000 from exhausting memory
// before anything connects.
const MaxDevices = 1_000_000

// Fleet is a parsed fleet file: groups of simulated devices and the seed
// from which everything random about them is derived.
type Fleet struct {
	// Version is the file format version; always 1.
	Version int
	// Seed makes the fleet reproducible; it defaults to 1.
	Seed   int64
	Groups []*Group
	// File is the file name the fleet was parsed from.
	File string
}

// Group is one entry of the fleet file's groups list: devices that share
// tags, reported properties and behaviour.
type Group struct {
	// IDs are the group's device ids: the explicit list, or the pattern
	// expanded with n = 1 … count.
	IDs      []string
	Tags     map[string]any
	Reported map[string]any
	// Methods maps a method name to how the devices answer it; the key "*"
	// covers every method not listed. Method values are shared by all the
	// group's devices and must not be changed.
	Methods map[string]*Method
	// Desired says how devices react to desired-property patches; nil
	// means they do not echo them into reported properties.
	Desired *Desired
	// Offline is the fraction of the group's devices that never connect;
	// which ones is chosen by the fleet's seed.
	Offline float64
	// Flapping is nil when no device of the group flaps.
	Flapping *Flapping
	// Degrade is nil when no device of the group degrades.
	Degrade *Degrade
	// Auth is how the group's devices authenticate: hub.AuthSAS (the
	// default), hub.AuthSelfSigned or hub.AuthCertificateAuthority; the
	// simulator makes the certificates (Register).
	Auth string
	// Range is where the group is written in the file.
	Range diag.Range
}

// Method is how a device answers one direct method.
type Method struct {
	// Status is the status of a successful answer; default 200.
	Status int
	// Payload is the JSON payload of a successful answer; default null.
	Payload json.RawMessage
	// Latency is how long the device takes to answer.
	Latency Latency
	// FailureRate is the probability, in [0, 1], that a call fails with
	// FailureStatus instead.
	FailureRate float64
	// FailureStatus is the status of a failed answer; default 500.
	FailureStatus int
	// DisconnectFor, when positive, makes the device go offline for this
	// long after a successful answer (a reboot, say).
	DisconnectFor time.Duration
}

// Latency is a response-time distribution. Median == P99 means a fixed
// latency; otherwise it is log-normal with that median and 99th percentile.
type Latency struct {
	Median, P99 time.Duration
}

// Desired is a device's reaction to desired-property patches.
type Desired struct {
	// Report echoes each desired patch into the reported properties.
	Report bool
	// Delay is how long after the patch the echo is sent.
	Delay time.Duration
}

// Flapping makes a fraction of a group's devices alternate between
// connected (for Up) and disconnected (for Down).
type Flapping struct {
	Fraction float64
	Up, Down time.Duration
}

// Degrade is a degradation some of a group's devices suffer, after an
// update (When) or from the start of the simulation: they report Report,
// once, After the moment it starts. It is what a health gate of a rollout
// should catch.
type Degrade struct {
	// When, if not nil, starts the degradation once the device's own
	// reported properties hold these values (each top-level key deep-equal
	// in JSON); nil starts it when the device starts.
	When map[string]any
	// After is how long after the start the device reports.
	After time.Duration
	// Fraction is the share of the group's devices that degrade, chosen
	// from the fleet's seed; default 1.
	Fraction float64
	// Report is the reported-properties patch the device sends: a
	// non-empty object.
	Report map[string]any
}

// Load reads and parses the fleet file at path. A file that cannot be
// read is reported as a diagnostic too, so callers handle one kind of
// failure.
func Load(path string) (*Fleet, diag.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		var ds diag.Diagnostics
		ds.Append(diag.Errorf(diag.Range{Filename: path}, "", "cannot read fleet file: %v", err).
			Hint("check the file name and that the file is readable"))
		return nil, ds
	}
	return Parse(path, src)
}

// Parse decodes and validates a fleet file. It reports every problem it
// finds, sorted by position; the fleet is nil when any of them is an
// error. filename is used in diagnostics and recorded in Fleet.File.
func Parse(filename string, src []byte) (*Fleet, diag.Diagnostics) {
	doc := diag.Decode(filename, src)
	if doc.Root == nil {
		if !doc.Diags.HasErrors() {
			doc.Diags.Append(diag.Errorf(doc.FileRange(), "", "fleet file is empty").
				Hint("a fleet file needs at least: version: 1 and a list of groups"))
		}
		doc.Diags.Sort()
		return nil, doc.Diags
	}
	p := &parser{fleet: &Fleet{Version: 1, Seed: 1, File: filename}, seen: map[string]idOrigin{}}
	p.decodeFleet(doc.Root)
	ds := doc.Diags
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return p.fleet, ds
}

// idOrigin remembers where a device id was first defined, for the
// duplicate message.
type idOrigin struct {
	group int // index in groups
	line  int
}

type parser struct {
	fleet *Fleet
	seen  map[string]idOrigin
	total int
}

func (p *parser) decodeFleet(root *diag.Node) {
	obj, ok := root.Object("version", "seed", "groups")
	if !ok {
		return
	}
	if v := obj.Require("version", "start the file with: version: 1"); v != nil {
		if n, ok := v.Int(); ok && n != 1 {
			v.Errorf("unsupported fleet file version %d", n).Hint("this iotjobs reads fleet files of version 1")
		}
	}
	if v := obj.Get("seed"); v != nil {
		if n, ok := v.Int(); ok {
			p.fleet.Seed = int64(n)
		}
	}
	g := obj.Require("groups", "list the simulated devices under groups:, e.g. - ids: [myDeviceId]")
	if g == nil {
		return
	}
	items, ok := g.Items()
	if !ok {
		return
	}
	if len(items) == 0 {
		g.Errorf("groups is empty").Hint("add at least one group, e.g. - ids: [myDeviceId]")
	}
	for i, it := range items {
		if grp := p.decodeGroup(it, i); grp != nil {
			p.fleet.Groups = append(p.fleet.Groups, grp)
		}
	}
}

func (p *parser) decodeGroup(n *diag.Node, index int) *Group {
	obj, ok := n.Object("ids", "count", "tags", "reported", "methods", "desired", "offline", "flapping", "degrade", "auth")
	if !ok {
		return nil
	}
	g := &Group{Range: n.Range(), Methods: map[string]*Method{}, Auth: hub.AuthSAS}
	if v := obj.Get("auth"); v != nil {
		g.Auth = decodeAuth(v)
	}
	p.decodeIDs(obj, g, index)
	if v := obj.Get("tags"); v != nil {
		g.Tags, _ = jsonObject(v)
	}
	if v := obj.Get("reported"); v != nil {
		g.Reported, _ = jsonObject(v)
	}
	if v := obj.Get("methods"); v != nil {
		p.decodeMethods(v, g)
	}
	if v := obj.Get("desired"); v != nil {
		g.Desired = decodeDesired(v)
	}
	if v := obj.Get("offline"); v != nil {
		g.Offline, _ = v.Fraction()
	}
	if v := obj.Get("flapping"); v != nil {
		g.Flapping = decodeFlapping(v)
	}
	if v := obj.Get("degrade"); v != nil {
		g.Degrade = decodeDegrade(v)
	}
	return g
}

// decodeIDs reads ids and count, expands a pattern and checks every id
// (characters, length, duplicates across the fleet).
func (p *parser) decodeIDs(obj *diag.Object, g *Group, index int) {
	const idsHint = `write a list of ids, e.g. ids: [dev1, dev2], or a pattern with a count, e.g. ids: "b43-{n:04}" and count: 250`
	ids := obj.Require("ids", idsHint)
	countNd := obj.Get("count")
	count, countOK := 0, false
	if countNd != nil {
		count, countOK = countNd.Int()
		if countOK && count < 1 {
			countNd.Errorf("count must be at least 1, got %d", count).Hint("remove the group or give it at least one device")
			countOK = false
		} else if countOK && count > MaxDevices {
			countNd.Errorf("count %d is too large; a fleet file holds at most %d devices", count, MaxDevices).
				Hint("split the fleet over several simulator processes, each with its own fleet file")
			countOK = false
		}
	}
	if ids == nil {
		return
	}
	if ids.IsList() {
		items, _ := ids.Items()
		if len(items) == 0 {
			ids.Errorf("ids is empty").Hint("list at least one device id, or remove the group")
			return
		}
		if countOK && count != len(items) {
			countNd.Errorf("count is %d but ids lists %d devices", count, len(items)).
				Hint("remove count; a list of ids gives the number of devices")
		}
		if !p.reserve(ids, len(items)) {
			return
		}
		for _, it := range items {
			id, ok := it.Text()
			if !ok || !checkID(it, id) {
				continue
			}
			if prev, dup := p.seen[id]; dup {
				it.Errorf("duplicate device id %q", id).
					Hint("it is already used at line %d (groups[%d]); device ids must be unique in a fleet", prev.line, prev.group)
				continue
			}
			p.seen[id] = idOrigin{group: index, line: it.YAML.Line}
			g.IDs = append(g.IDs, id)
		}
		return
	}
	pattern, ok := ids.Text()
	if !ok {
		return
	}
	pat, ok := parsePattern(ids, pattern)
	if !ok {
		return
	}
	if countNd == nil {
		ids.Errorf("an id pattern needs a count").
			Hint("add count: N to the group for devices %s, %s …", pat.id(1), pat.id(2))
		return
	}
	if !countOK || !p.reserve(countNd, count) {
		return
	}
	if longest := pat.id(count); len(longest) > hub.MaxIDLength {
		ids.Errorf("device id %q is %d characters long; the limit is %d", longest, len(longest), hub.MaxIDLength).
			Hint("shorten the pattern")
		return
	}
	g.IDs = make([]string, 0, count)
	var firstDup string
	var firstPrev idOrigin
	dups := 0
	for i := 1; i <= count; i++ {
		id := pat.id(i)
		if prev, dup := p.seen[id]; dup {
			if dups == 0 {
				firstDup, firstPrev = id, prev
			}
			dups++
			continue
		}
		p.seen[id] = idOrigin{group: index, line: ids.YAML.Line}
		g.IDs = append(g.IDs, id)
	}
	// One diagnostic per pattern, however many of its ids collide.
	if dups > 0 {
		more := ""
		if dups > 1 {
			more = fmt.Sprintf(" (and %d more)", dups-1)
		}
		ids.Errorf("duplicate device id %q%s", firstDup, more).
			Hint("it is already used at line %d (groups[%d]); device ids must be unique in a fleet", firstPrev.line, firstPrev.group)
	}
}

// reserve counts n more devices towards MaxDevices, reporting at nd when
// the fleet would exceed it.
func (p *parser) reserve(nd *diag.Node, n int) bool {
	if p.total+n > MaxDevices {
		nd.Errorf("the fleet exceeds %d devices", MaxDevices).
			Hint("split the fleet over several simulator processes, each with its own fleet file")
		return false
	}
	p.total += n
	return true
}

// idPattern is an id pattern such as "b43-{n:04}": the text before and
// after the placeholder and the zero-padding width.
type idPattern struct {
	prefix, suffix string
	width          int
}

func (p idPattern) id(n int) string {
	num := strconv.Itoa(n)
	if len(num) < p.width {
		num = strings.Repeat("0", p.width-len(num)) + num
	}
	return p.prefix + num + p.suffix
}

// parsePattern reads an id pattern with exactly one {n} or {n:0W}
// placeholder and checks the characters around it.
func parsePattern(n *diag.Node, s string) (idPattern, bool) {
	const hint = "write {n} for 1, 2, 3 … or {n:04} for 0001, 0002 …"
	open := strings.IndexByte(s, '{')
	if open < 0 {
		if !checkID(n, s) {
			return idPattern{}, false
		}
		n.Errorf("id pattern %q has no {n} placeholder", s).
			Hint("to give a single id write a list: ids: [%s]; for many devices add a placeholder: %s", s, hint)
		return idPattern{}, false
	}
	end := strings.IndexByte(s[open:], '}')
	if end < 0 {
		errAt(n, n.ValueRange(open, open+1), "unclosed { in id pattern %q", s).Hint("%s", hint)
		return idPattern{}, false
	}
	end += open
	ph := s[open : end+1]
	pat := idPattern{prefix: s[:open], suffix: s[end+1:]}
	switch {
	case ph == "{n}":
	case strings.HasPrefix(ph, "{n:0"):
		// {n:04} means four digits, zero-padded, as in Go's %04d.
		w, err := strconv.Atoi(ph[len("{n:0") : len(ph)-1])
		if err != nil || w < 1 || w > 20 || strings.ContainsAny(ph[len("{n:0"):len(ph)-1], "+-") {
			errAt(n, n.ValueRange(open, end+1), "invalid placeholder %s in id pattern", ph).Hint("%s", hint)
			return pat, false
		}
		pat.width = w
	default:
		errAt(n, n.ValueRange(open, end+1), "invalid placeholder %s in id pattern", ph).Hint("%s", hint)
		return pat, false
	}
	if i := strings.IndexAny(pat.suffix, "{}"); i >= 0 {
		off := end + 1 + i
		errAt(n, n.ValueRange(off, off+1), "an id pattern takes one {n} placeholder, found another %q", s[off:off+1]).
			Hint("%s", hint)
		return pat, false
	}
	if strings.IndexByte(pat.prefix, '}') >= 0 {
		off := strings.IndexByte(pat.prefix, '}')
		errAt(n, n.ValueRange(off, off+1), "unexpected } in id pattern %q", s).Hint("%s", hint)
		return pat, false
	}
	ok := checkIDChars(n, pat.prefix, 0) && checkIDChars(n, pat.suffix, end+1)
	return pat, ok
}

// checkID reports an id that Azure IoT Hub would refuse.
func checkID(n *diag.Node, id string) bool {
	if id == "" {
		n.Errorf("device id is empty").Hint("give the device a name of 1 to %d characters", hub.MaxIDLength)
		return false
	}
	if len(id) > hub.MaxIDLength {
		n.Errorf("device id is %d characters long; the limit is %d", len(id), hub.MaxIDLength).Hint("shorten it")
		return false
	}
	return checkIDChars(n, id, 0)
}

// checkIDChars reports the first character of s (which starts at offset
// off of n's value) that is not allowed in a device id.
func checkIDChars(n *diag.Node, s string, off int) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case hub.MQTTWildcard(c):
			errAt(n, n.ValueRange(off+i, off+i+1), "device id contains %q, an MQTT wildcard", c).
				Hint("Azure allows %q in device ids, but a simulated device connects over MQTT, where its id is part of its topics; choose another character", c)
			return false
		case !hub.DeviceIDByte(c):
			r, _ := firstRune(s[i:])
			errAt(n, n.ValueRange(off+i, off+i+len(string(r))), "device id contains %q, which is not allowed", r).
				Hint("device ids use ASCII letters, digits and - . %% _ * ? ! ( ) , = @ $ ' : ;")
			return false
		}
	}
	return true
}

func firstRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 0
}

// invalidMethodChar checks a direct-method name, which Azure wants in
// printable US-ASCII without $ ( ) < > @ , ; : \ " / [ ] ? = { } or space.
// It returns the offset of the first offending byte, or -1.
func invalidMethodChar(name string) int {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`$()<>@,;:\"/[]?={}`, c) >= 0 {
			return i
		}
	}
	return -1
}

func (p *parser) decodeMethods(n *diag.Node, g *Group) {
	pairs, ok := n.Pairs()
	if !ok {
		return
	}
	for _, pr := range pairs {
		name := pr.Key
		if name == "" {
			pr.KeyNd.Errorf("method name is empty").Hint(`name the method, or use "*" for any other method`)
		} else if i := invalidMethodChar(name); i >= 0 && name != "*" {
			r, size := firstRune(name[i:])
			errAt(pr.KeyNd, pr.KeyNd.ValueRange(i, i+size), "method name %q contains %q, which is not allowed", name, r).
				Hint(`method names are printable ASCII without spaces or $ ( ) < > @ , ; : \ " / [ ] ? = { }; "*" alone means any other method`)
		}
		if m := decodeMethod(pr.Value); m != nil {
			g.Methods[name] = m
		}
	}
}

func decodeMethod(n *diag.Node) *Method {
	obj, ok := n.Object("status", "payload", "latency", "failureRate", "failureStatus", "disconnectFor")
	if !ok {
		return nil
	}
	m := &Method{Status: 200, Payload: json.RawMessage("null"), FailureStatus: 500}
	if v := obj.Get("status"); v != nil {
		m.Status, _ = status(v)
	}
	if v := obj.Get("failureStatus"); v != nil {
		m.FailureStatus, _ = status(v)
	}
	if v := obj.Get("payload"); v != nil {
		if val, ok := jsonValue(v); ok {
			b, err := json.Marshal(val)
			switch {
			case err != nil:
				v.Errorf("payload cannot be encoded as JSON: %v", err)
			case len(b) > hub.MaxMethodPayload:
				v.Errorf("payload is %d bytes of JSON; direct-method payloads are limited to %d", len(b), hub.MaxMethodPayload).
					Hint("make the payload smaller")
			default:
				m.Payload = b
			}
		}
	}
	if v := obj.Get("latency"); v != nil {
		m.Latency, _ = decodeLatency(v)
	}
	if v := obj.Get("failureRate"); v != nil {
		m.FailureRate, _ = v.Fraction()
	}
	if v := obj.Get("disconnectFor"); v != nil {
		m.DisconnectFor, _ = v.Duration()
	}
	return m
}

func status(n *diag.Node) (int, bool) {
	s, ok := n.Int()
	if !ok {
		return 0, false
	}
	if s < 100 || s > 599 {
		n.Errorf("status %d is out of range", s).Hint("use an HTTP-like status between 100 and 599, e.g. 200 or 500")
		return 0, false
	}
	return s, true
}

// decodeLatency reads a fixed latency (20ms) or a distribution
// ({median: 200ms, p99: 2s}).
func decodeLatency(n *diag.Node) (Latency, bool) {
	if !n.IsMapping() {
		d, ok := n.Duration()
		return Latency{Median: d, P99: d}, ok
	}
	obj, ok := n.Object("median", "p99")
	if !ok {
		return Latency{}, false
	}
	var l Latency
	med := obj.Require("median", "give the median latency, e.g. median: 200ms")
	if med == nil {
		return Latency{}, false
	}
	if l.Median, ok = med.Duration(); !ok {
		return Latency{}, false
	}
	l.P99 = l.Median
	if v := obj.Get("p99"); v != nil {
		if l.P99, ok = v.Duration(); !ok {
			return Latency{}, false
		}
		if l.P99 < l.Median {
			v.Errorf("p99 %s is below the median %s", l.P99, l.Median).
				Hint("the 99th percentile must be at least the median; make them equal for a fixed latency")
			return Latency{}, false
		}
		if l.Median == 0 && l.P99 > 0 {
			med.Errorf("a latency distribution needs a median above zero").
				Hint("give a median such as 1ms, or write latency: %s for a fixed latency", l.P99)
			return Latency{}, false
		}
	}
	return l, true
}

func decodeDesired(n *diag.Node) *Desired {
	obj, ok := n.Object("report", "delay")
	if !ok {
		return nil
	}
	// A desired block exists to echo patches; report defaults to true.
	d := &Desired{Report: true}
	if v := obj.Get("report"); v != nil {
		d.Report, _ = v.Bool()
	}
	if v := obj.Get("delay"); v != nil {
		d.Delay, _ = v.Duration()
	}
	return d
}

func decodeFlapping(n *diag.Node) *Flapping {
	obj, ok := n.Object("fraction", "up", "down")
	if !ok {
		return nil
	}
	f := &Flapping{}
	if v := obj.Require("fraction", `say how many devices flap, e.g. fraction: 2%`); v != nil {
		f.Fraction, _ = v.Fraction()
	}
	positive := func(key, example string) time.Duration {
		v := obj.Require(key, fmt.Sprintf("say how long a flapping device stays %s, e.g. %s: %s", key, key, example))
		if v == nil {
			return 0
		}
		d, ok := v.Duration()
		if ok && d == 0 {
			v.Errorf("%s must be above zero", key).Hint("give a duration such as %s", example)
		}
		return d
	}
	f.Up = positive("up", "10m")
	f.Down = positive("down", "1m")
	return f
}

func decodeDegrade(n *diag.Node) *Degrade {
	obj, ok := n.Object("when", "after", "fraction", "report")
	if !ok {
		return nil
	}
	dg := &Degrade{Fraction: 1}
	if v := obj.Get("when"); v != nil {
		if m, ok := jsonObject(v); ok {
			if len(m) == 0 {
				// An empty condition would hold at once: say what was meant.
				v.Errorf("when is empty").
					Hint(`list the reported values that start the degradation, e.g. when: {firmware: "2.4.1"}, or remove when to start it with the simulation`)
			}
			dg.When = m
		}
	}
	if v := obj.Get("after"); v != nil {
		dg.After, _ = v.Duration()
	}
	if v := obj.Get("fraction"); v != nil {
		dg.Fraction, _ = v.Fraction()
	}
	if v := obj.Require("report", "give the reported-property patch the devices send, e.g. report: {health: {crashes: 5}}"); v != nil {
		if m, ok := jsonObject(v); ok {
			if len(m) == 0 {
				v.Errorf("report is empty").
					Hint("give the reported properties the degraded devices send, e.g. report: {health: {crashes: 5}}")
			}
			dg.Report = m
		}
	}
	return dg
}

// jsonObject reads a JSON object (tags, reported properties).
func jsonObject(n *diag.Node) (map[string]any, bool) {
	if !n.IsMapping() {
		n.Pairs() // reports "expected an object" unless already reported
		return nil, false
	}
	v, ok := jsonValue(n)
	m, _ := v.(map[string]any)
	return m, ok && m != nil
}

// jsonValue converts a YAML value into its JSON form, checking that
// object keys are valid twin property names (no control characters, '.',
// '$' or space, at most 1 KB), as Azure requires of tags and properties.
func jsonValue(n *diag.Node) (any, bool) {
	switch {
	case n.IsMapping():
		pairs, ok := n.Pairs()
		if !ok {
			return nil, false
		}
		m := make(map[string]any, len(pairs))
		for _, p := range pairs {
			if !validPropertyName(p.Key) {
				p.KeyNd.Errorf("property name %q is not allowed", p.Key).
					Hint("names are 1 to 1024 bytes without '.', '$', spaces or control characters")
				ok = false
			}
			v, vok := jsonValue(p.Value)
			ok = ok && vok
			m[p.Key] = v
		}
		return m, ok
	case n.IsList():
		items, ok := n.Items()
		s := make([]any, len(items))
		for i, it := range items {
			v, vok := jsonValue(it)
			ok = ok && vok
			s[i] = v
		}
		return s, ok
	}
	return n.JSON()
}

func validPropertyName(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '.' || r == '$' || r == ' ' {
			return false
		}
	}
	return true
}

// errAt records an error at a range inside n (a character of its value).
func errAt(n *diag.Node, r diag.Range, format string, args ...any) *diag.Diagnostic {
	d := diag.Errorf(r, n.Path, format, args...)
	n.Doc().Diags.Append(d)
	return d
}

// decodeAuth reads a group's authentication kind.
func decodeAuth(n *diag.Node) string {
	s, ok := n.Text()
	if !ok {
		return hub.AuthSAS
	}
	switch s {
	case hub.AuthSAS, hub.AuthSelfSigned, hub.AuthCertificateAuthority:
		return s
	}
	n.Errorf("auth %q is not sas, selfSigned or certificateAuthority", s).
		Hint("sas: SAS tokens from the device keys; selfSigned: a self-signed certificate whose thumbprint is registered; certificateAuthority: a certificate signed by a CA registered with the hub")
	return hub.AuthSAS
}
