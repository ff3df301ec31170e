package gfm

import (
	"bytes"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
)

// Table is a table as a GFM renderer sees it: its header cells and the
// text of each row's cells.
type Table struct {
	Header []string
	Rows   [][]string
}

// md keeps raw HTML (<details>), as GitHub does for the tags it allows.
var md = goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))

// HTML renders src.
func HTML(src []byte) (string, error) {
	var b bytes.Buffer
	err := md.Convert(src, &b)
	return b.String(), err
}

// Tables lists the tables of src, in order, with their cells' text.
func Tables(src []byte) []Table {
	doc := md.Parser().Parse(text.NewReader(src))
	var out []Table
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		t, ok := n.(*east.Table)
		if !ok || !entering {
			return ast.WalkContinue, nil
		}
		var tb Table
		for row := t.FirstChild(); row != nil; row = row.NextSibling() {
			var cells []string
			for c := row.FirstChild(); c != nil; c = c.NextSibling() {
				cells = append(cells, strings.TrimSpace(plain(c, src)))
			}
			if _, header := row.(*east.TableHeader); header {
				tb.Header = cells
			} else {
				tb.Rows = append(tb.Rows, cells)
			}
		}
		out = append(out, tb)
		return ast.WalkSkipChildren, nil
	})
	return out
}

// plain is the text of n and its children, without markup.
func plain(n ast.Node, src []byte) string {
	var b strings.Builder
	ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(src))
		case *ast.String:
			b.Write(c.Value)
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}
