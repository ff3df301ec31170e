package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// The CI recipes of README "Plans in CI: review, apply, drift".
const (
	githubWorkflow = "examples/ci/github/iotjobs.yml"
	gitlabPipeline = "examples/ci/gitlab/.gitlab-ci.yml"
)

// lintWorkflow runs actionlint on a workflow, without its shellcheck and
// pyflakes rules: those need binaries that CI machines may lack.
func lintWorkflow(t *testing.T, path string, src []byte) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(path, src, nil)
	if err != nil {
		t.Fatalf("actionlint %s: %v", path, err)
	}
	return errs
}

// TestCIGitHubWorkflowLints holds the GitHub recipe to actionlint: syntax,
// expressions and the contexts they may use, the inputs of the actions it
// uses, permissions and untrusted input in scripts.
func TestCIGitHubWorkflowLints(t *testing.T) {
	src, err := os.ReadFile(githubWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range lintWorkflow(t, githubWorkflow, src) {
		t.Errorf("%s:%d:%d: %s [%s]", githubWorkflow, e.Line, e.Column, e.Message, e.Kind)
	}
}

// TestCILinterCatches shows that the linter as configured does find
// mistakes, so that TestCIGitHubWorkflowLints passing means something.
func TestCILinterCatches(t *testing.T) {
	bad := `on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/download-artifact@v4
        with:
          run_id: ${{ github.run_id }}
      - run: echo "${{ github.event.pull_request.title }}"
`
	errs := lintWorkflow(t, "bad.yml", []byte(bad))
	kinds := map[string]bool{}
	for _, e := range errs {
		kinds[e.Kind] = true
	}
	for _, want := range []string{"action", "expression"} {
		if !kinds[want] {
			t.Errorf("actionlint found no %q error in a workflow with a misspelt input and an untrusted title in a script; got %v", want, errs)
		}
	}
}

// TestCIRecipeCommands checks every iotjobs command line of the recipes
// against the CLI itself: the command exists, each flag is one of its
// flags, the output format is one it takes; so a renamed flag breaks the
// recipes here rather than in a user's pipeline. It also checks that the
// recipes still run the flow (plan saved, as Markdown linking its HTML
// page, apply with report and JUnit, check).
func TestCIRecipeCommands(t *testing.T) {
	want := []string{"plan --out --html --html-url -o", "apply --report --junit", "check -o"}
	for _, file := range []string{githubWorkflow, gitlabPipeline} {
		t.Run(file, func(t *testing.T) {
			scripts := recipeScripts(t, file)
			var seen []string
			for _, script := range scripts {
				for _, words := range iotjobsCommands(script) {
					used, err := checkCommandLine(commands(), words)
					if err != nil {
						t.Errorf("%s: iotjobs %s: %v", file, strings.Join(words, " "), err)
						continue
					}
					seen = append(seen, used)
				}
			}
			for _, w := range want {
				if !slices.Contains(seen, w) {
					t.Errorf("%s runs no `iotjobs %s ...`; it runs %q", file, w, seen)
				}
			}
		})
	}
}

// TestCICommandLineCheck is the checker of TestCIRecipeCommands on lines
// it must accept and lines it must refuse.
func TestCICommandLineCheck(t *testing.T) {
	cases := []struct {
		name, script string
		want         []string // per command found: its signature, or "error: ..." text the error contains
	}{
		{"plan", `iotjobs plan --out "$out.iotjobs" -o markdown "$p" > "$out.md" 2> "$out.log" || rc=$?`, []string{"plan --out -o"}},
		{"apply", `iotjobs apply --report r.json --junit=j.xml saved.iotjobs`, []string{"apply --report --junit"}},
		{"continued line and pipe", "iotjobs check \\\n  -o json p.yaml | jq .", []string{"check -o"}},
		{"subcommand", `iotjobs jobs list -o table`, []string{"jobs list -o"}},
		{"in a command substitution", `v=$(iotjobs version)`, []string{"version"}},
		{"comment and quoted words are no commands", `echo "iotjobs plan --nope" # iotjobs apply --nope`, nil},
		{"module path is no command", `go install "github.com/iotjobs/iotjobs@$v"`, nil},
		{"unknown command", `iotjobs aply p.yaml`, []string{"error: no command aply"}},
		{"renamed flag", `iotjobs apply --reprot r.json p.yaml`, []string{"error: apply has no flag --reprot"}},
		{"flag of another command", `iotjobs check --out x p.yaml`, []string{"error: check has no flag --out"}},
		{"output it does not take", `iotjobs apply -o markdown p.yaml`, []string{`error: -o "markdown"`}},
		{"flag without its value", `iotjobs plan p.yaml --out`, []string{"error: --out needs a value"}},
		{"two plans", `iotjobs plan a.yaml b.yaml`, []string{"error: takes PLAN"}},
		{"no subcommand", `iotjobs jobs`, []string{"error: needs a subcommand"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, words := range iotjobsCommands(tc.script) {
				used, err := checkCommandLine(commands(), words)
				if err != nil {
					used = "error: " + err.Error()
				}
				got = append(got, used)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(tc.want[i], "error: ") && got[i] != tc.want[i] ||
					strings.HasPrefix(tc.want[i], "error: ") && !strings.Contains(got[i], strings.TrimPrefix(tc.want[i], "error: ")) {
					t.Errorf("command %d: got %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestCIGitLabPipeline checks the GitLab recipe's shape, which no linter
// available here checks: its stages, the three jobs and when each runs,
// the artifacts that carry the reviewed plan and the reports, and the
// resource group that keeps two applies apart.
func TestCIGitLabPipeline(t *testing.T) {
	type job struct {
		Stage         string           `yaml:"stage"`
		Extends       string           `yaml:"extends"`
		Script        []string         `yaml:"script"`
		ResourceGroup string           `yaml:"resource_group"`
		Rules         []map[string]any `yaml:"rules"`
		Environment   struct {
			Name string `yaml:"name"`
		} `yaml:"environment"`
		Artifacts struct {
			When    string   `yaml:"when"`
			Paths   []string `yaml:"paths"`
			Reports struct {
				JUnit string `yaml:"junit"`
			} `yaml:"reports"`
		} `yaml:"artifacts"`
	}
	src, err := os.ReadFile(gitlabPipeline)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var stages []string
	if n, ok := doc["stages"]; !ok || n.Decode(&stages) != nil || !slices.Equal(stages, []string{"plan", "apply", "check"}) {
		t.Errorf("stages %q, want plan, apply, check", stages)
	}
	// Every top-level key but GitLab's global keywords is a job (hidden
	// when it starts with a dot).
	keywords := map[string]bool{"stages": true, "variables": true, "workflow": true, "default": true, "include": true}
	jobs := map[string]job{}
	for name, n := range doc {
		if keywords[name] {
			continue
		}
		var j job
		if err := n.Decode(&j); err != nil {
			t.Errorf("job %s: %v", name, err)
		}
		jobs[name] = j
	}
	for name, j := range jobs {
		if strings.HasPrefix(name, ".") {
			continue
		}
		if !slices.Contains(stages, j.Stage) {
			t.Errorf("job %s: stage %q is not one of %q", name, j.Stage, stages)
		}
		if len(j.Script) == 0 {
			t.Errorf("job %s has no script", name)
		}
		if _, ok := jobs[j.Extends]; j.Extends != "" && !ok {
			t.Errorf("job %s extends %s, which is not defined", name, j.Extends)
		}
	}
	rule := func(name string) string {
		if len(jobs[name].Rules) == 0 {
			return ""
		}
		s, _ := jobs[name].Rules[0]["if"].(string)
		return s
	}
	checks := []struct {
		name string
		ok   bool
		want string
	}{
		{"iotjobs-plan", jobs["iotjobs-plan"].Stage == "plan", "be in stage plan"},
		{"iotjobs-plan", strings.Contains(rule("iotjobs-plan"), `"merge_request_event"`), "run in merge request pipelines"},
		{"iotjobs-plan", slices.Contains(jobs["iotjobs-plan"].Artifacts.Paths, "iotjobs-out/"), "keep iotjobs-out/ (the saved plans) as artifacts"},
		{"iotjobs-apply", jobs["iotjobs-apply"].Stage == "apply", "be in stage apply"},
		{"iotjobs-apply", strings.Contains(rule("iotjobs-apply"), "$CI_DEFAULT_BRANCH"), "run on the default branch"},
		{"iotjobs-apply", jobs["iotjobs-apply"].ResourceGroup != "", "have a resource_group, so that two applies never overlap"},
		{"iotjobs-apply", jobs["iotjobs-apply"].Environment.Name == "fleet-production", "deploy to environment fleet-production"},
		{"iotjobs-apply", jobs["iotjobs-apply"].Artifacts.When == "always", "keep its artifacts when it fails"},
		{"iotjobs-apply", jobs["iotjobs-apply"].Artifacts.Reports.JUnit != "", "report its JUnit"},
		{"iotjobs-check", jobs["iotjobs-check"].Stage == "check", "be in stage check"},
		{"iotjobs-check", strings.Contains(rule("iotjobs-check"), `"schedule"`), "run in scheduled pipelines"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: job %s should %s", gitlabPipeline, c.name, c.want)
		}
	}
}

// recipeScripts returns the shell scripts of a CI file: a GitHub
// workflow's run steps, or a GitLab job's before_script, script and
// after_script.
func recipeScripts(t *testing.T, file string) []string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var scripts []string
	add := func(v any) {
		switch v := v.(type) {
		case string:
			scripts = append(scripts, v)
		case []any:
			var lines []string
			for _, l := range v {
				if s, ok := l.(string); ok {
					lines = append(lines, s)
				}
			}
			scripts = append(scripts, strings.Join(lines, "\n"))
		}
	}
	if jobs, ok := doc["jobs"].(map[string]any); ok { // GitHub
		for _, j := range jobs {
			steps, _ := j.(map[string]any)["steps"].([]any)
			for _, s := range steps {
				add(s.(map[string]any)["run"])
			}
		}
	} else { // GitLab: every top-level mapping may be a job
		for _, j := range doc {
			if m, ok := j.(map[string]any); ok {
				add(m["before_script"])
				add(m["script"])
				add(m["after_script"])
			}
		}
	}
	if len(scripts) == 0 {
		t.Fatalf("%s: no scripts found", file)
	}
	return scripts
}

// iotjobsCommands returns the words of every iotjobs command in a shell
// script (after "iotjobs", up to the end of the command: a pipe, a list
// operator, a redirection or the end of the line). It knows shell words
// well enough for the recipes: quotes, comments, backslash continuations,
// and commands at the start of a line, after an operator or keyword, or in
// $( ).
func iotjobsCommands(script string) [][]string {
	script = strings.ReplaceAll(script, "\\\n", " ")
	starts := map[string]bool{"": true, "|": true, "||": true, "&&": true, ";": true, "$(": true, "(": true, "{": true,
		"if": true, "then": true, "else": true, "do": true, "!": true, "time": true}
	var out [][]string
	for _, line := range strings.Split(script, "\n") {
		toks := shellTokens(line)
		for i, tk := range toks {
			prev := ""
			if i > 0 {
				prev = toks[i-1].text
			}
			if tk.op || tk.text != "iotjobs" || !starts[prev] {
				continue
			}
			var words []string
			for _, w := range toks[i+1:] {
				if w.op {
					break
				}
				words = append(words, w.text)
			}
			out = append(out, words)
		}
	}
	return out
}

type shellToken struct {
	text string
	op   bool // an operator or redirection, not a word
}

// shellTokens splits one line of shell into words (quotes removed) and
// operators, dropping a comment.
func shellTokens(line string) []shellToken {
	var toks []shellToken
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, shellToken{text: w.String()})
			w.Reset()
			inWord = false
		}
	}
	ops := []string{"2>&1", "&&", "||", "$(", ">>", "2>", "|", ";", "(", ")", "<", ">", "&"}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			inWord = true
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			w.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			return toks
		default:
			var op string
			for _, o := range ops {
				// "2>" only where a word starts: in a2>f, a2 is a word.
				if strings.HasPrefix(line[i:], o) && (!inWord || o[0] != '2') {
					op = o
					break
				}
			}
			if op == "" {
				inWord = true
				w.WriteByte(c)
				continue
			}
			flush()
			toks = append(toks, shellToken{text: op, op: true})
			i += len(op) - 1
		}
	}
	flush()
	return toks
}

// argsRE matches a command's ArgsUsage that names its arguments one by
// one (PLAN, ID METHOD), so their number is known.
var argsRE = regexp.MustCompile(`^[A-Z][A-Z.]*( [A-Z][A-Z.]*)*$`)

// checkCommandLine checks the words after "iotjobs" against the CLI's
// commands, and returns the command's signature: its name and the flags
// it used, in order ("plan --out -o").
func checkCommandLine(cmds []*cli.Command, words []string) (string, error) {
	var cmd *cli.Command
	var path []string
	for len(words) > 0 {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(words[0]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		path = append(path, next.Name)
		words = words[1:]
	}
	switch {
	case cmd == nil && len(words) > 0:
		return "", fmt.Errorf("no command %s", words[0])
	case cmd == nil:
		return "", fmt.Errorf("no command")
	case len(cmd.Subcommands) > 0:
		return "", fmt.Errorf("%s needs a subcommand", strings.Join(path, " "))
	}
	name := strings.Join(path, " ")
	sig := []string{name}
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			args = append(args, words[i+1:]...)
			break
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			args = append(args, w)
			continue
		}
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		var f cli.Flag
		for _, cf := range cmd.Flags {
			if slices.Contains(cf.Names(), flagName) {
				f = cf
			}
		}
		if f == nil {
			return "", fmt.Errorf("%s has no flag %s (iotjobs %s --help lists them)", name, w, name)
		}
		sig = append(sig, w[:len(w)-len(strings.TrimLeft(w, "-"))]+flagName)
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		if !hasValue {
			if i+1 >= len(words) {
				return "", fmt.Errorf("--%s needs a value", flagName)
			}
			i++
			value = words[i]
		}
		if slices.Contains(f.Names(), "output") && !slices.Contains(outputValues(name, f), value) {
			return "", fmt.Errorf("%s -o %q: it takes %q", name, value, outputValues(name, f))
		}
	}
	if argsRE.MatchString(cmd.ArgsUsage) {
		if n := len(strings.Fields(cmd.ArgsUsage)); len(args) != n {
			return "", fmt.Errorf("%s takes %s, got %q", name, cmd.ArgsUsage, args)
		}
	}
	return strings.Join(sig, " "), nil
}

// outputValues are the values a command's --output takes, as its usage
// lists them ("text or json"; the list commands: "table, wide, json...").
func outputValues(cmd string, f cli.Flag) []string {
	usage := f.(cli.DocGenerationFlag).GetUsage()
	if i := strings.IndexAny(usage, "(:;"); i >= 0 {
		usage = usage[:i]
	}
	var vals []string
	for _, v := range regexp.MustCompile(`[a-z][a-z0-9]*`).FindAllString(usage, -1) {
		if v != "or" && v != "and" {
			vals = append(vals, v)
		}
	}
	return vals
}
