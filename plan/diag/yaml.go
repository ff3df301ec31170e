package diag

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Document is one YAML file being walked. It owns the source text (to turn
// yaml.v3's line/column into byte offsets and to locate positions inside
// scalars) and the diagnostics that walking produces.
type Document struct {
	Filename string
	Src      []byte
	// Root is the top-level value, or nil when the file has no document or
	// could not be parsed (a syntax error is then in Diags).
	Root *Node
	// Diags collects every problem found while decoding and walking.
	Diags Diagnostics

	lineStarts []int
	runeCache  map[int][]int
	// bad holds nodes already reported (aliases, merge keys, foreign tags);
	// the walker skips them silently so that one mistake gives one error.
	bad map[*yaml.Node]bool
}

// Decode parses src as a single YAML document and checks what the walker
// does not support: anchors, aliases, merge keys (<<), custom tags and
// extra documents. Syntax errors become diagnostics positioned at the line
// yaml.v3 names (column 1), since yaml.v3 reports no column.
func Decode(filename string, src []byte) *Document {
	d := &Document{Filename: filename, Src: src, bad: map[*yaml.Node]bool{}}
	d.lineStarts = append(d.lineStarts, 0)
	for i, c := range src {
		if c == '\n' {
			d.lineStarts = append(d.lineStarts, i+1)
		}
	}
	root, err := d.parse()
	if err != nil {
		d.syntaxError(err)
		return d
	}
	if root == nil {
		return d
	}
	d.prescan(root, "", false)
	d.Root = &Node{YAML: root, doc: d}
	return d
}

func (d *Document) parse() (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a panic must
		// never escape a parser of user files.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(d.Src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		d.add(Errorf(d.rangeAt(extra.Line, 1, 1), "", "only one YAML document is allowed per file").
			Hint("remove the \"---\" separator and everything after it, or move it to its own file"))
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *Document) syntaxError(err error) {
	msg := err.Error()
	line := 1
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	hint := "check the indentation and quoting on this line and the one before it"
	col := 1
	if strings.Contains(msg, "cannot start any token") {
		// The usual culprit is a tab used for indentation; point at it.
		if i := bytes.Index(d.Src, []byte("\t")); i >= 0 {
			p := d.posAtByte(i)
			line, col = p.Line, p.Column
			hint = "YAML does not allow tabs for indentation; use spaces"
		}
	}
	line = min(max(line, 1), len(d.lineStarts))
	d.add(Errorf(d.rangeAt(line, col, 1), "", "invalid YAML: %s", msg).Hint("%s", hint))
}

func (d *Document) add(diag *Diagnostic) *Diagnostic {
	d.Diags.Append(diag)
	return diag
}

// FileRange is the range of the start of the file, for problems with the
// file as a whole (for example "plan is empty").
func (d *Document) FileRange() Range { return d.rangeAt(1, 1, 0) }

var standardTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!timestamp": true, "!!map": true, "!!seq": true, "!!binary": true, "!!merge": true,
}

// prescan reports anchors, aliases, merge keys and custom tags once each,
// before any walking, and marks the offending nodes bad.
func (d *Document) prescan(n *yaml.Node, path string, mergeValue bool) {
	if n.Anchor != "" {
		d.add(Errorf(d.nodeRange(n), path, "YAML anchors are not supported (&%s)", n.Anchor).
			Hint("remove the anchor and write repeated values out in full (vars can hold repeated text)"))
	}
	switch n.Kind {
	case yaml.AliasNode:
		d.bad[n] = true
		if !mergeValue {
			d.add(Errorf(d.nodeRange(n), path, "YAML aliases are not supported (*%s)", n.Value).
				Hint("write the value out in full (vars can hold repeated text)"))
		}
		return
	case yaml.ScalarNode:
		if !standardTags[n.Tag] && n.Tag != "" {
			d.bad[n] = true
			d.add(Errorf(d.nodeRange(n), path, "unsupported YAML tag %s", n.Tag).
				Hint("remove the tag; values are typed by how they are written"))
		}
		return
	}
	if n.Tag != "" && !standardTags[n.Tag] {
		d.bad[n] = true
		d.add(Errorf(d.nodeRange(n), path, "unsupported YAML tag %s", n.Tag).
			Hint("remove the tag; values are typed by how they are written"))
		return
	}
	for i := 0; i < len(n.Content); i++ {
		c := n.Content[i]
		if n.Kind == yaml.MappingNode && i%2 == 0 && c.Kind == yaml.ScalarNode && c.Tag == "!!merge" {
			d.bad[c] = true
			d.add(Errorf(d.nodeRange(c), JoinPath(path, "<<"), "YAML merge keys (<<) are not supported").
				Hint("write the fields out in full"))
			if i+1 < len(n.Content) {
				d.bad[n.Content[i+1]] = true
				d.prescan(n.Content[i+1], JoinPath(path, "<<"), true)
			}
			i++
			continue
		}
		switch {
		case n.Kind == yaml.MappingNode && i%2 == 0:
			d.prescan(c, path, false) // a key
		case n.Kind == yaml.MappingNode:
			d.prescan(c, JoinPath(path, n.Content[i-1].Value), false)
		default:
			d.prescan(c, fmt.Sprintf("%s[%d]", path, i), false)
		}
	}
}

// lineEnd is the byte offset of the end of 1-based line (before its \n).
func (d *Document) lineEnd(line int) int {
	if line < len(d.lineStarts) {
		return d.lineStarts[line] - 1
	}
	return len(d.Src)
}

// runeStarts returns the byte offset of each character of a line that is
// not pure ASCII (nil for ASCII lines, where column and byte agree). It is
// computed once per line, so that positions on a very long line cost
// O(log n) rather than a rescan each.
func (d *Document) runeStarts(line int) []int {
	if offs, ok := d.runeCache[line]; ok {
		return offs
	}
	start, end := d.lineStarts[line-1], d.lineEnd(line)
	var offs []int
	for i := start; i < end; i++ {
		if d.Src[i] >= utf8.RuneSelf {
			for j := start; j < end; {
				offs = append(offs, j)
				_, size := utf8.DecodeRune(d.Src[j:end])
				j += size
			}
			break
		}
	}
	if d.runeCache == nil {
		d.runeCache = map[int][]int{}
	}
	d.runeCache[line] = offs
	return offs
}

// posAtByte converts a byte offset of the source into a position.
func (d *Document) posAtByte(b int) Pos {
	b = min(max(b, 0), len(d.Src))
	line := sort.Search(len(d.lineStarts), func(i int) bool { return d.lineStarts[i] > b })
	start := d.lineStarts[line-1]
	offs := d.runeStarts(line)
	if offs == nil {
		return Pos{Line: line, Column: b - start + 1, Byte: b}
	}
	// Characters before b, counting a split character as one.
	col := sort.Search(len(offs), func(i int) bool { return offs[i] >= b })
	return Pos{Line: line, Column: col + 1, Byte: b}
}

// posAt converts yaml.v3's line and column (1-based, in characters) into a
// position with its byte offset.
func (d *Document) posAt(line, col int) Pos {
	if line < 1 || len(d.lineStarts) == 0 {
		return Pos{}
	}
	line = min(line, len(d.lineStarts))
	col = max(col, 1)
	start, end := d.lineStarts[line-1], d.lineEnd(line)
	b := start + col - 1
	if offs := d.runeStarts(line); offs != nil {
		if col-1 < len(offs) {
			b = offs[col-1]
		} else {
			b = end
		}
	}
	return Pos{Line: line, Column: col, Byte: min(b, end)}
}

func (d *Document) rangeAt(line, col, width int) Range {
	start := d.posAt(line, col)
	return Range{Filename: d.Filename, Start: start, End: d.posAt(line, col+width)}
}

func (d *Document) nodeRange(n *yaml.Node) Range {
	start := d.posAt(n.Line, n.Column)
	return Range{Filename: d.Filename, Start: start, End: d.nodeEnd(n, start)}
}

// nodeEnd finds where n ends in the source: after the closing quote of a
// quoted scalar, after the last character of other scalars, and at the end
// of the last child of a collection.
func (d *Document) nodeEnd(n *yaml.Node, start Pos) Pos {
	switch n.Kind {
	case yaml.AliasNode:
		return d.posAtByte(start.Byte + 1 + len(n.Value))
	case yaml.ScalarNode:
		end := valuePos(d, n, start, len(n.Value))
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 && end.Byte < len(d.Src) {
			return d.posAtByte(end.Byte + 1)
		}
		return end
	case yaml.MappingNode, yaml.SequenceNode:
		if len(n.Content) == 0 {
			return d.posAtByte(start.Byte + 2) // "{}" or "[]"
		}
		last := n.Content[len(n.Content)-1]
		return d.nodeEnd(last, d.posAt(last.Line, last.Column))
	}
	return start
}

// Node is a YAML value being walked: the yaml.v3 node, where it sits in
// the document (Path) and the document it belongs to. Its methods read the
// value as a particular type and report a diagnostic when it is not one;
// they return ok=false then, and the caller simply moves on, so that one
// pass finds every problem.
type Node struct {
	// YAML is the underlying node, for callers that need its style or tag.
	YAML *yaml.Node
	// Path locates the node, e.g. steps[1].rollout.batches[0]; "" is the root.
	Path string
	doc  *Document
}

// Doc returns the document the node belongs to.
func (n *Node) Doc() *Document { return n.doc }

// Range returns the node's span in the source.
func (n *Node) Range() Range { return n.doc.nodeRange(n.YAML) }

// Errorf records an error diagnostic at the node and returns it, so a hint
// can be chained: n.Errorf("bad %q", v).Hint("use …").
func (n *Node) Errorf(format string, args ...any) *Diagnostic {
	return n.doc.add(Errorf(n.Range(), n.Path, format, args...))
}

// Warningf records a warning diagnostic at the node and returns it.
func (n *Node) Warningf(format string, args ...any) *Diagnostic {
	return n.doc.add(Warningf(n.Range(), n.Path, format, args...))
}

// ValuePos returns the source position of the byte at offset off of the
// scalar's decoded value. It is exact for one-line plain, single- and
// double-quoted scalars and maps multi-line and block scalars line by line,
// so that an error found inside a value (a query, a ${...} reference) can
// be shown where it is in the file.
func (n *Node) ValuePos(off int) Pos {
	start := n.doc.posAt(n.YAML.Line, n.YAML.Column)
	if n.YAML.Kind != yaml.ScalarNode {
		return start
	}
	return valuePos(n.doc, n.YAML, start, off)
}

// ValueRange is the source range of bytes [from, to) of the scalar's value.
func (n *Node) ValueRange(from, to int) Range {
	return Range{Filename: n.doc.Filename, Start: n.ValuePos(from), End: n.ValuePos(max(to, from))}
}

// Child returns a node for a child yaml node with a path below n's.
func (n *Node) child(y *yaml.Node, path string) *Node {
	return &Node{YAML: y, Path: path, doc: n.doc}
}

var identPath = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// JoinPath appends a field name to a path, quoting it when it is not a
// plain identifier.
func JoinPath(path, key string) string {
	if !identPath.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// IsNull reports whether the node is a YAML null (~, null or nothing).
func (n *Node) IsNull() bool {
	return n.YAML.Kind == yaml.ScalarNode && n.YAML.Tag == "!!null"
}

// Describe names the node's kind for messages: "an object", "a list",
// "a string", "an integer", "a number", "a boolean", "null", ….
func (n *Node) Describe() string {
	switch n.YAML.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.YAML.Tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	}
	return "a value"
}

func (n *Node) isBad() bool { return n == nil || n.doc.bad[n.YAML] }

// expected reports a wrong kind of value.
func (n *Node) expected(what, hint string) {
	d := n.Errorf("expected %s, got %s", what, n.Describe())
	if n.IsNull() {
		d.Hint("give a value, or remove the field to use its default")
	} else if hint != "" {
		d.Hint("%s", hint)
	}
}

// Pair is one key and value of a YAML mapping.
type Pair struct {
	Key   string
	KeyNd *Node
	Value *Node
}

// Pairs returns the entries of a mapping in file order, reporting
// duplicate keys (at the second occurrence) and non-scalar keys.
func (n *Node) Pairs() ([]Pair, bool) {
	if n.isBad() {
		return nil, false
	}
	if n.YAML.Kind != yaml.MappingNode {
		n.expected("an object (key: value pairs)", "write the fields as \"key: value\" lines indented under this one, or as {key: value, ...}")
		return nil, false
	}
	var pairs []Pair
	first := map[string]*Node{}
	c := n.YAML.Content
	for i := 0; i+1 < len(c); i += 2 {
		k, v := c[i], c[i+1]
		if n.doc.bad[k] {
			continue
		}
		key := n.child(k, n.Path)
		if k.Kind != yaml.ScalarNode {
			key.Errorf("keys must be plain strings, got %s", key.Describe()).Hint("write the key as text, e.g. name:")
			continue
		}
		path := JoinPath(n.Path, k.Value)
		key.Path = path
		if prev, dup := first[k.Value]; dup {
			key.Errorf("duplicate field %q", k.Value).
				Hint("%q is already set at line %d; remove one of them", k.Value, prev.YAML.Line)
			continue
		}
		first[k.Value] = key
		pairs = append(pairs, Pair{Key: k.Value, KeyNd: key, Value: n.child(v, path)})
	}
	return pairs, true
}

// Object is a mapping whose keys were checked against an allowed set.
type Object struct {
	node  *Node
	pairs []Pair
}

// Object reads a mapping whose keys must be among allowed. An unknown key
// is reported with a did-you-mean hint (or the list of allowed keys), a
// duplicate at its second occurrence; the other entries are kept.
func (n *Node) Object(allowed ...string) (*Object, bool) {
	pairs, ok := n.Pairs()
	if !ok {
		return nil, false
	}
	o := &Object{node: n}
	for _, p := range pairs {
		known := false
		for _, a := range allowed {
			if a == p.Key {
				known = true
				break
			}
		}
		if !known {
			p.KeyNd.Errorf("unknown field %q", p.Key).Hint("%s", suggestHint(p.Key, allowed, "allowed fields"))
			continue
		}
		o.pairs = append(o.pairs, p)
	}
	return o, true
}

// Node returns the mapping node itself.
func (o *Object) Node() *Node { return o.node }

// Pairs returns the accepted entries in file order.
func (o *Object) Pairs() []Pair { return o.pairs }

// Get returns the value of key, or nil when it is absent.
func (o *Object) Get(key string) *Node {
	for _, p := range o.pairs {
		if p.Key == key {
			return p.Value
		}
	}
	return nil
}

// Key returns the key node of key, or nil when it is absent; diagnostics
// about the field's presence (two fields that exclude each other) go there.
func (o *Object) Key(key string) *Node {
	for _, p := range o.pairs {
		if p.Key == key {
			return p.KeyNd
		}
	}
	return nil
}

// Has reports whether key is present.
func (o *Object) Has(key string) bool { return o.Get(key) != nil }

// Require returns the value of key, reporting "missing field" at the
// object when it is absent.
func (o *Object) Require(key, hint string) *Node {
	if v := o.Get(key); v != nil {
		return v
	}
	// The path names the missing field, so that later checks of the same
	// field can tell it was already reported.
	d := o.node.doc.add(Errorf(o.node.Range(), JoinPath(o.node.Path, key), "missing required field %q", key))
	if hint != "" {
		d.Hint("%s", hint)
	}
	return nil
}

// Items returns the elements of a list.
func (n *Node) Items() ([]*Node, bool) {
	if n.isBad() {
		return nil, false
	}
	if n.YAML.Kind != yaml.SequenceNode {
		n.expected("a list", "write a list as [a, b] or one \"- item\" per line")
		return nil, false
	}
	items := make([]*Node, len(n.YAML.Content))
	for i, c := range n.YAML.Content {
		items[i] = n.child(c, fmt.Sprintf("%s[%d]", n.Path, i))
	}
	return items, true
}

// Scalar returns the text of any non-null scalar (string, number, boolean,
// timestamp) as written.
func (n *Node) Scalar() (string, bool) {
	if n.isBad() {
		return "", false
	}
	if n.YAML.Kind != yaml.ScalarNode || n.IsNull() {
		n.expected("a string, number or boolean", "write a single value here")
		return "", false
	}
	return n.YAML.Value, true
}

// Text returns a string value. Numbers and booleans are refused (quote
// them); an unquoted timestamp is accepted as the text it is.
func (n *Node) Text() (string, bool) {
	if n.isBad() {
		return "", false
	}
	if n.YAML.Kind == yaml.ScalarNode && (n.YAML.Tag == "!!str" || n.YAML.Tag == "!!timestamp") {
		return n.YAML.Value, true
	}
	hint := "write a single line of text here, quoted if it contains special characters"
	if n.YAML.Kind == yaml.ScalarNode {
		hint = fmt.Sprintf("quote it to make it a string: %q", n.YAML.Value)
	}
	n.expected("a string", hint)
	return "", false
}

// Int returns an integer value.
func (n *Node) Int() (int, bool) {
	if n.isBad() {
		return 0, false
	}
	if n.YAML.Kind == yaml.ScalarNode && n.YAML.Tag == "!!int" {
		var v int
		if err := n.YAML.Decode(&v); err == nil {
			return v, true
		}
		n.Errorf("integer %s is out of range", n.YAML.Value).Hint("use a smaller number")
		return 0, false
	}
	n.expected("an integer", "write a whole number such as 3, without quotes")
	return 0, false
}

// Float returns a number (integer or decimal); NaN and infinities are
// refused.
func (n *Node) Float() (float64, bool) {
	if n.isBad() {
		return 0, false
	}
	if n.YAML.Kind == yaml.ScalarNode && (n.YAML.Tag == "!!int" || n.YAML.Tag == "!!float") {
		var v float64
		if err := n.YAML.Decode(&v); err == nil && !isNaNOrInf(v) {
			return v, true
		}
		n.Errorf("%s is not a finite number", n.YAML.Value).Hint("JSON has no NaN or infinity; use an ordinary number")
		return 0, false
	}
	n.expected("a number", "write a number such as 0.5, without quotes")
	return 0, false
}

// Bool returns a boolean value (true or false).
func (n *Node) Bool() (bool, bool) {
	if n.isBad() {
		return false, false
	}
	if n.YAML.Kind == yaml.ScalarNode && n.YAML.Tag == "!!bool" {
		var v bool
		if err := n.YAML.Decode(&v); err == nil {
			return v, true
		}
	}
	n.expected("true or false", "write true or false, without quotes")
	return false, false
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }

// Tag returns a scalar's resolved YAML tag ("!!str", "!!int", "!!float",
// "!!bool", "!!null", "!!timestamp"), or "" for collections and aliases.
func (n *Node) Tag() string {
	if n.YAML.Kind != yaml.ScalarNode {
		return ""
	}
	return n.YAML.Tag
}

// IsMapping reports whether the node is a mapping (an object).
func (n *Node) IsMapping() bool { return n.YAML.Kind == yaml.MappingNode }

// IsList reports whether the node is a sequence (a list).
func (n *Node) IsList() bool { return n.YAML.Kind == yaml.SequenceNode }

// Scalars calls fn for every scalar value under n (n itself included, map
// keys excluded) in file order, with paths set, skipping nodes already
// reported as unsupported. It reports nothing itself; it exists for passes
// such as variable expansion that touch every value before the typed walk.
func (n *Node) Scalars(fn func(*Node)) {
	if n.isBad() {
		return
	}
	switch n.YAML.Kind {
	case yaml.ScalarNode:
		fn(n)
	case yaml.SequenceNode:
		for i, c := range n.YAML.Content {
			n.child(c, fmt.Sprintf("%s[%d]", n.Path, i)).Scalars(fn)
		}
	case yaml.MappingNode:
		c := n.YAML.Content
		for i := 0; i+1 < len(c); i += 2 {
			if n.doc.bad[c[i]] {
				continue
			}
			n.child(c[i+1], JoinPath(n.Path, c[i].Value)).Scalars(fn)
		}
	}
}

// SetValue replaces a scalar's value, for example after variable
// expansion. A plain (unquoted) scalar's type is resolved again from the
// new text, as if it had been written that way, so "${vars.floor}" that
// expands to 3 reads as an integer; a quoted one stays a string.
func (n *Node) SetValue(v string) {
	if n.YAML.Kind != yaml.ScalarNode {
		return
	}
	n.YAML.Value = v
	if n.YAML.Style != 0 || n.YAML.Tag != "!!str" {
		return
	}
	var re yaml.Node
	if err := yaml.Unmarshal([]byte(v), &re); err != nil || len(re.Content) != 1 {
		return
	}
	if c := re.Content[0]; c.Kind == yaml.ScalarNode && c.Style == 0 && c.Value == v && standardTags[c.Tag] {
		n.YAML.Tag = c.Tag
	}
}
