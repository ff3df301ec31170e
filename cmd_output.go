// Output of the list commands (devices list, jobs list, jobs devices and
// query): one --output for all four, with the same formats and the same
// default (README "Output formats").

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/iotjobs/iotjobs/hub"
)

// listFormats are the values a list command's --output accepts.
var listFormats = []string{"table", "wide", "json", "jsonl", "yaml"}

// listOutputFlag is the list commands' --output. It has no default
// value because the default depends on where stdout goes (listFormat).
func listOutputFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"},
		Usage: "table, wide, json, jsonl or yaml (default: table at a terminal, json otherwise)"}
}

// listFlags are the flags every list command has (new ones each call).
func listFlags() []cli.Flag { return []cli.Flag{hubFlag(), caFlag(), dataFlag(), listOutputFlag()} }

// listsToTerminal reports whether a list command's stdout is a terminal
// (isTerminal, cmd_apply.go). It is a variable so that a test can play
// one.
var listsToTerminal = isTerminal

// listFormat is a list command's --output. Without one, a person at a
// terminal gets a table and a script gets JSON, which is what these
// commands printed before they had tables.
func listFormat(c *cli.Context) (string, error) {
	o := c.String("output")
	if o == "" {
		if listsToTerminal(c.App.Writer) {
			return "table", nil
		}
		return "json", nil
	}
	if !slices.Contains(listFormats, o) {
		return "", usagef("%s: --output %q: use table, wide, json, jsonl or yaml", commandPath(c), o)
	}
	return o, nil
}

// commandPath is the command's name with its parents', "jobs list"
// (urfave/cli v2's FullName is only "list" there).
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// listed is a list command's parsed arguments with its --output.
type listed[O any] struct {
	format string
	args   O
}

// listAction is adminAction for a list command: --output is checked with
// the other arguments, before anything contacts a hub.
func listAction[O any](parse func(c *cli.Context) (O, error), run func(c *cli.Context, h hub.Client, format string, o O) error) cli.ActionFunc {
	return hubAction(func(c *cli.Context) (listed[O], error) {
		format, err := listFormat(c)
		if err != nil {
			return listed[O]{}, err
		}
		o, err := parse(c)
		return listed[O]{format: format, args: o}, err
	}, func(c *cli.Context, h hub.Client, l listed[O]) error {
		return run(c, h, l.format, l.args)
	})
}

// column is one column of a list command's table.
type column[T any] struct {
	name string // the header, upper-cased when printed
	wide bool   // shown only by -o wide
	clip bool   // -o table cuts the cell to maxCell characters; wide shows it whole
	cell func(T) string
}

// maxCell is how many characters a clipped cell keeps in -o table, so
// that a nested object does not push the other columns off the screen.
const maxCell = 30

// printList prints a list command's items in format. json, jsonl and
// yaml print each item as it encodes to JSON (the hub API's shape); table
// and wide print cols as a header row and one row per item. An empty
// table prints nothing on stdout and says "no NOUN" on stderr, so that a
// pipe reading the table sees no header without rows.
func printList[T any](c *cli.Context, format, noun string, items []T, cols []column[T]) error {
	w := c.App.Writer
	switch format {
	case "json":
		if items == nil {
			items = []T{}
		}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	case "jsonl":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		return printYAML(w, items)
	}
	if len(items) == 0 {
		_, err := fmt.Fprintf(c.App.ErrWriter, "no %s\n", noun)
		return err
	}
	var shown []column[T]
	for _, col := range cols {
		if !col.wide || format == "wide" {
			shown = append(shown, col)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cells := make([]string, len(shown))
	for i, col := range shown {
		cells[i] = strings.ToUpper(col.name)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	for _, it := range items {
		for i, col := range shown {
			cells[i] = cellText(col.cell(it), col.clip && format == "table")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cellText is s as a table cell: control characters (a tab or a newline
// would break the columns) become spaces, an empty cell is "-" so that
// every row has as many fields as the header for awk, and clip cuts it to
// maxCell characters.
func cellText(s string, clip bool) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if clip && utf8.RuneCountInString(s) > maxCell {
		s = string([]rune(s)[:maxCell-3]) + "..."
	}
	return s
}

// cellTime is a time in a table: RFC 3339 in UTC, to the second. The zero
// time is Azure's "never", and like no time at all is empty.
func cellTime(t *hub.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// cellJSON is a JSON value in a table: a string without its quotes, and
// anything else as compact JSON.
func cellJSON(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return `""`
		}
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

// header is a column header for a JSON key: deviceId is DEVICE ID.
func header(key string) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range key {
		if unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)) {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// printYAML prints items as a YAML list. Each item goes through its JSON
// encoding, so that the YAML has the API's field names, in the same order
// as the JSON, and numbers as written (yaml.v3 alone would use the Go
// field names, sort map keys and print 1000000.0 as 1e+06).
func printYAML[T any](w io.Writer, items []T) error {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		n, err := yamlNode(dec)
		if err != nil {
			return fmt.Errorf("convert %s to YAML: %w", b, err)
		}
		seq.Content = append(seq.Content, n)
	}
	if len(seq.Content) == 0 {
		seq.Style = yaml.FlowStyle // []
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(seq); err != nil {
		return err
	}
	return enc.Close()
}

// yamlNode reads one JSON value from dec (which uses numbers) as a YAML
// node.
func yamlNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	scalar := func(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
	switch v := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v == '{' {
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, scalar("!!str", k.(string)))
			}
			child, err := yamlNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, child)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle // {} or []
		}
		return n, nil
	case string:
		return scalar("!!str", v), nil
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return scalar("!!float", string(v)), nil
		}
		return scalar("!!int", string(v)), nil
	case bool:
		return scalar("!!bool", strconv.FormatBool(v)), nil
	default: // nil
		return scalar("!!null", "null"), nil
	}
}
