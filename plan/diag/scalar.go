package diag

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Duration reads a non-negative duration written either as an integer
// number of seconds (3600) or as a Go duration string ("90s", "10m",
// "1h30m").
func (n *Node) Duration() (time.Duration, bool) {
	if n.isBad() {
		return 0, false
	}
	const hint = `use a number of seconds or a duration like "90s", "10m" or "1h30m"`
	if n.YAML.Kind != yaml.ScalarNode {
		n.expected("a duration", hint)
		return 0, false
	}
	var d time.Duration
	switch n.YAML.Tag {
	case "!!int":
		secs, err := strconv.ParseInt(n.YAML.Value, 10, 64)
		if err != nil || secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
			n.Errorf("invalid duration %s", n.YAML.Value).Hint("%s", hint)
			return 0, false
		}
		d = time.Duration(secs) * time.Second
	case "!!str":
		var err error
		d, err = time.ParseDuration(strings.TrimSpace(n.YAML.Value))
		if err != nil {
			n.Errorf("invalid duration %q", n.YAML.Value).Hint("%s", hint)
			return 0, false
		}
	default:
		n.expected("a duration", hint)
		return 0, false
	}
	if d < 0 {
		n.Errorf("duration %s is negative", n.YAML.Value).Hint("durations must be zero or more")
		return 0, false
	}
	return d, true
}

// Fraction reads a proportion written as a percentage ("2%", "0.5%") or as
// a number between 0 and 1 (0.02), and returns it as a fraction in [0, 1].
func (n *Node) Fraction() (float64, bool) {
	if n.isBad() {
		return 0, false
	}
	const hint = `use a percentage between 0% and 100% such as "2%", or a fraction between 0 and 1 such as 0.02`
	if n.YAML.Kind != yaml.ScalarNode {
		n.expected("a percentage", hint)
		return 0, false
	}
	var f float64
	switch n.YAML.Tag {
	case "!!str":
		s := strings.TrimSpace(n.YAML.Value)
		num, ok := strings.CutSuffix(s, "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !ok || err != nil || isNaNOrInf(v) {
			n.Errorf("invalid percentage %q", n.YAML.Value).Hint("%s", hint)
			return 0, false
		}
		if v < 0 || v > 100 {
			n.Errorf("percentage %s is out of range", s).Hint("%s", hint)
			return 0, false
		}
		f = v / 100
	case "!!int", "!!float":
		v, ok := n.Float()
		if !ok {
			return 0, false
		}
		if v < 0 || v > 1 {
			d := n.Errorf("fraction %s is out of range", n.YAML.Value)
			if v > 1 && v <= 100 {
				d.Hint("fractions are between 0 and 1; did you mean \"%s%%\"?", n.YAML.Value)
			} else {
				d.Hint("%s", hint)
			}
			return 0, false
		}
		f = v
	default:
		n.expected("a percentage", hint)
		return 0, false
	}
	return f, true
}

// JSON converts the value into the Go form of a JSON value: objects become
// map[string]any, lists []any, numbers float64, and strings, booleans and
// null themselves. Timestamps stay strings as written.
func (n *Node) JSON() (any, bool) {
	if n.isBad() {
		return nil, false
	}
	switch n.YAML.Kind {
	case yaml.MappingNode:
		pairs, ok := n.Pairs()
		if !ok {
			return nil, false
		}
		m := make(map[string]any, len(pairs))
		for _, p := range pairs {
			v, vok := p.Value.JSON()
			ok = ok && vok
			m[p.Key] = v
		}
		return m, ok
	case yaml.SequenceNode:
		items, _ := n.Items()
		s := make([]any, len(items))
		ok := true
		for i, it := range items {
			v, vok := it.JSON()
			ok = ok && vok
			s[i] = v
		}
		return s, ok
	case yaml.ScalarNode:
		switch n.YAML.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			return n.Bool()
		case "!!int", "!!float":
			return n.Float()
		default:
			return n.YAML.Value, true
		}
	}
	n.expected("a JSON value", "write an object, list, string, number, boolean or null")
	return nil, false
}

// valuePos maps offset off of scalar n's decoded value to a source
// position. start is the position of the scalar's first character.
func valuePos(d *Document, n *yaml.Node, start Pos, off int) Pos {
	off = min(max(off, 0), len(n.Value))
	src := d.Src
	b := start.Byte
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return blockPos(d, n, start, off)
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if p, ok := doubleQuotedPos(d, b, off); ok {
			return p
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		i, produced := b+1, 0
		for i < len(src) && produced < off {
			switch {
			case src[i] == '\n':
				return linesPos(d, n, start, off)
			case src[i] == '\'' && i+1 < len(src) && src[i+1] == '\'':
				i += 2
				produced++
			case src[i] == '\'':
				return d.posAtByte(i)
			default:
				i++
				produced++
			}
		}
		return d.posAtByte(i)
	default:
		// A one-line plain scalar is its own source text.
		if !strings.Contains(n.Value, "\n") && b+len(n.Value) <= len(src) && string(src[b:b+len(n.Value)]) == n.Value {
			return d.posAtByte(b + off)
		}
	}
	return linesPos(d, n, start, off)
}

// doubleQuotedPos walks a double-quoted scalar's source, decoding escapes,
// until off bytes of value have been produced. It gives up (ok=false) on a
// line break, where folding makes the arithmetic inexact.
func doubleQuotedPos(d *Document, b, off int) (Pos, bool) {
	src := d.Src
	i, produced := b+1, 0
	for i < len(src) && produced < off {
		c := src[i]
		switch {
		case c == '\n':
			return Pos{}, false
		case c == '"':
			return d.posAtByte(i), true
		case c == '\\' && i+1 < len(src):
			i, produced = i+2, produced+escapeLen(src, i+1)
			switch src[i-1] {
			case 'x':
				i += 2
			case 'u':
				i += 4
			case 'U':
				i += 8
			case '\n':
				return Pos{}, false
			}
		default:
			_, size := utf8.DecodeRune(src[i:])
			i += size
			produced += size
		}
	}
	return d.posAtByte(min(i, len(src))), true
}

// escapeLen is the number of value bytes the escape at src[i] (the byte
// after the backslash) decodes to.
func escapeLen(src []byte, i int) int {
	hex := func(n int) int {
		if i+1+n > len(src) {
			return 1
		}
		r, err := strconv.ParseUint(string(src[i+1:i+1+n]), 16, 32)
		if err != nil {
			return 1
		}
		return max(utf8.RuneLen(rune(r)), 1)
	}
	switch src[i] {
	case 'x':
		return hex(2)
	case 'u':
		return hex(4)
	case 'U':
		return hex(8)
	case 'N', '_':
		return 2
	case 'L', 'P':
		return 3
	}
	return 1
}

// blockPos maps an offset of a literal (|) or folded (>) block scalar: its
// content starts on the line after the indicator, indented by the first
// non-blank line's indentation.
func blockPos(d *Document, n *yaml.Node, start Pos, off int) Pos {
	var segs []segment
	indent := -1
	for line := start.Line + 1; line <= len(d.lineStarts); line++ {
		text := lineText(d, line)
		trimmed := strings.TrimLeft(text, " ")
		if strings.TrimSpace(text) == "" {
			continue
		}
		ind := len(text) - len(trimmed)
		if indent < 0 {
			indent = ind
		}
		if ind < indent {
			break
		}
		segs = append(segs, segment{byteAt: d.lineStarts[line-1] + indent, text: text[indent:]})
	}
	return matchSegments(d, n.Value, segs, start, off)
}

// linesPos maps an offset of a multi-line flow scalar (plain or quoted)
// whose lines are folded into spaces: each source line's text is matched
// against the value in order.
func linesPos(d *Document, n *yaml.Node, start Pos, off int) Pos {
	var segs []segment
	first := start.Byte
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		first++
	}
	end := bytesIndexFrom(d.Src, first, '\n')
	segs = append(segs, segment{byteAt: first, text: string(d.Src[first:end])})
	for line := start.Line + 1; line <= len(d.lineStarts) && line <= start.Line+strings.Count(n.Value, " ")+strings.Count(n.Value, "\n")+1; line++ {
		text := lineText(d, line)
		trimmed := strings.TrimLeft(text, " \t")
		segs = append(segs, segment{byteAt: d.lineStarts[line-1] + len(text) - len(trimmed), text: trimmed})
	}
	return matchSegments(d, n.Value, segs, start, off)
}

type segment struct {
	byteAt int
	text   string
}

// matchSegments walks the value and the source segments together: each
// segment matches the longest common prefix at the current value offset;
// the separators that folding inserted (spaces, newlines) are skipped.
func matchSegments(d *Document, value string, segs []segment, start Pos, off int) Pos {
	v := 0
	for _, s := range segs {
		for v < len(value) && v < off && (value[v] == ' ' || value[v] == '\n') && !strings.HasPrefix(s.text, value[v:v+1]) {
			v++
		}
		k := 0
		for k < len(s.text) && v+k < len(value) && s.text[k] == value[v+k] {
			k++
		}
		if off <= v+k {
			return d.posAtByte(s.byteAt + max(off-v, 0))
		}
		v += k
	}
	return start
}

func lineText(d *Document, line int) string {
	b := d.lineStarts[line-1]
	e := bytesIndexFrom(d.Src, b, '\n')
	return strings.TrimRight(string(d.Src[b:e]), "\r")
}

func bytesIndexFrom(src []byte, from int, c byte) int {
	for i := from; i < len(src); i++ {
		if src[i] == c {
			return i
		}
	}
	return len(src)
}
