package plan

import (
	"regexp"
	"sort"
	"strings"

	"github.com/iotjobs/iotjobs/plan/diag"
)

var (
	varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// decodeVars reads the vars: section. Values are strings (numbers and
// booleans are taken as written) and may use ${env.NAME}, but not other
// vars, which keeps expansion a single, order-free pass.
func (d *decoder) decodeVars(n *diag.Node) {
	if d.keep(n) == nil {
		return
	}
	pairs, ok := n.Pairs()
	if !ok {
		return
	}
	d.plan.Vars = make(map[string]string, len(pairs))
	for _, p := range pairs {
		if !varName.MatchString(p.Key) {
			p.KeyNd.Errorf("invalid variable name %q", p.Key).
				Hint("use letters, digits, '_' and '-', starting with a letter")
			continue
		}
		text, ok := p.Value.Scalar()
		if !ok {
			continue
		}
		if p.Value.Tag() == "!!str" {
			text = d.expandText(p.Value, text, false)
		}
		d.plan.Vars[p.Key] = text
	}
}

// expand replaces ${vars.NAME} and ${env.NAME} in every string under n.
func (d *decoder) expand(n *diag.Node) {
	if n == nil {
		return
	}
	n.Scalars(func(s *diag.Node) {
		if s.Tag() != "!!str" || !strings.Contains(s.YAML.Value, "${") {
			return
		}
		out := d.expandText(s, s.YAML.Value, true)
		if out != s.YAML.Value {
			if d.expanded == nil {
				d.expanded = map[string]bool{}
			}
			d.expanded[s.Path] = true
			s.SetValue(out)
		}
	})
}

// expandText expands the references in text, the value of n, reporting
// each bad one at its place inside the value. "$${" is a literal "${".
func (d *decoder) expandText(n *diag.Node, text string, allowVars bool) string {
	var b strings.Builder
	for i := 0; i < len(text); {
		if strings.HasPrefix(text[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(text[i:], "${") {
			b.WriteByte(text[i])
			i++
			continue
		}
		end := strings.IndexByte(text[i:], '}')
		if end < 0 {
			d.errorIn(n, i, len(text), "unterminated reference %q", text[i:]).
				Hint(`close it with "}", or write "$${" for a literal "${"`)
			return text
		}
		end += i
		ref := text[i+2 : end]
		kind, name, _ := strings.Cut(ref, ".")
		switch {
		case kind == "vars" && allowVars:
			v, ok := d.plan.Vars[name]
			if !ok {
				e := d.errorIn(n, i, end+1, "unknown variable %q", name)
				if s := suggestVar(name, d.plan.Vars); s != "" {
					e.Hint("did you mean %q?", s)
				} else {
					e.Hint("define it under vars:, e.g. vars: {%s: \"...\"}", name)
				}
			}
			b.WriteString(v)
		case kind == "vars":
			d.errorIn(n, i, end+1, "a variable cannot refer to another variable (%q)", "${"+ref+"}").
				Hint("vars may use ${env.NAME}; repeat the value instead")
		case kind == "env" && envName.MatchString(name):
			v, ok := d.opts.env(name)
			if !ok {
				d.errorIn(n, i, end+1, "environment variable %s is not set", name).
					Hint("set it before running iotjobs, e.g. %s=value iotjobs apply PLAN", name)
			}
			b.WriteString(v)
		default:
			d.errorIn(n, i, end+1, "unknown reference %q", "${"+ref+"}").
				Hint(`use ${vars.NAME} or ${env.NAME}; write "$${" for a literal "${"`)
		}
		i = end + 1
	}
	return b.String()
}

// errorIn reports an error at bytes [from, to) of the scalar n's value.
func (d *decoder) errorIn(n *diag.Node, from, to int, format string, args ...any) *diag.Diagnostic {
	diagnostic := diag.Errorf(n.ValueRange(from, to), n.Path, format, args...)
	d.doc.Diags.Append(diagnostic)
	return diagnostic
}

func suggestVar(name string, vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	return diag.Suggest(name, names)
}
