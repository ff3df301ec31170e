package plan

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/iotjobs/iotjobs/plan/diag"
)

var (
	varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidVarName reports whether name can name a plan variable: letters,
// digits, '_' and '-', starting with a letter or '_'.
func ValidVarName(name string) bool { return varName.MatchString(name) }

// decodeVars reads the vars: section. Values are strings (numbers and
// booleans are taken as written) and may use ${env.NAME}, but not other
// vars, which keeps expansion a single, order-free pass. A value given
// from outside ([WithVars]) replaces the declared one, whose ${env.NAME}
// is then not needed.
func (d *decoder) decodeVars(n *diag.Node) {
	var declared []string
	if d.keep(n) != nil {
		declared = d.declareVars(n)
	}
	d.checkOverrides(declared)
}

// declareVars fills Plan.Vars from the vars: mapping n and returns the
// names it declares.
func (d *decoder) declareVars(n *diag.Node) []string {
	pairs, ok := n.Pairs()
	if !ok {
		return nil
	}
	d.plan.Vars = make(map[string]string, len(pairs))
	declared := make([]string, 0, len(pairs))
	for _, p := range pairs {
		if !varName.MatchString(p.Key) {
			p.KeyNd.Errorf("invalid variable name %q", p.Key).
				Hint("use letters, digits, '_' and '-', starting with a letter")
			continue
		}
		declared = append(declared, p.Key)
		text, ok := p.Value.Scalar()
		if !ok {
			continue
		}
		if v, set := d.opts.vars[p.Key]; set {
			d.plan.Vars[p.Key] = v
			if d.plan.Overrides == nil {
				d.plan.Overrides = map[string]string{}
			}
			d.plan.Overrides[p.Key] = v
			continue
		}
		if p.Value.Tag() == "!!str" {
			text = d.expandText(p.Value, text, false)
		}
		d.plan.Vars[p.Key] = text
	}
	return declared
}

// checkOverrides reports each value given from outside for a variable the
// plan does not declare, at the vars: key (or the top of the file).
func (d *decoder) checkOverrides(declared []string) {
	if len(d.opts.vars) == 0 {
		return
	}
	names := make([]string, 0, len(d.opts.vars))
	for name := range d.opts.vars {
		if !slices.Contains(declared, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	at := d.doc.FileRange()
	if k := d.keys["vars"]; k != nil {
		at = k.Range()
	}
	for _, name := range names {
		e := diag.Errorf(at, "vars", "value given for undeclared variable %q", name)
		switch s := diag.Suggest(name, declared); {
		case len(declared) == 0:
			e.Hint("the plan declares no variables; declare it under vars: (e.g. vars: {%s: \"default\"}) to set it", name)
		case s != "":
			e.Hint("did you mean %q? The plan declares: %s", s, strings.Join(declared, ", "))
		default:
			e.Hint("the plan declares: %s; declare it under vars: to set it", strings.Join(declared, ", "))
		}
		d.doc.Diags.Append(e)
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
