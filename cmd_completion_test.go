package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestComplete: the candidates a shell gets for the words typed so far
// (and the flag being typed), from run, before any command check: nothing
// is run and the exit code is 0 even for words that are no command.
func TestComplete(t *testing.T) {
	var all []string
	for _, c := range commands() {
		all = append(all, c.Name)
	}
	tests := []struct {
		words []string
		want  string // the candidates, space-separated
		// has, instead of want: candidates among others (a command's
		// flags, which grow).
		has []string
	}{
		{words: nil, want: strings.Join(all, " ")},
		{words: []string{"jobs"}, want: "list show watch cancel devices"},
		{words: []string{"hub"}, want: "serve ca"},
		{words: []string{"hub", "ca"}, want: "add list remove"},
		{words: []string{"-"}, want: "--help --version"},
		{words: []string{"hub", "serve", "--"}, has: []string{"--data", "--https", "--help"}},
		{words: []string{"check", "-"}, has: []string{"--hub", "--output", "-o", "--var", "--var-file", "--help"}},
		// Flags may follow the plan.
		{words: []string{"check", "plan.yaml", "--var"}, want: ""},
		{words: []string{"check", "plan.yaml", "-o"}, want: "text json"},
		{words: []string{"plan", "--output"}, want: "text json markdown"},
		{words: []string{"devices", "list", "-o"}, want: "table wide json jsonl yaml"},
		{words: []string{"jobs", "list", "--output"}, want: "table wide json jsonl yaml"},
		{words: []string{"plan", "--output=j"}, want: ""},
		{words: []string{"completion"}, want: "bash zsh fish"},
		{words: []string{"completion", "bash"}, want: ""},
		// A plan, a file: the shell completes file names.
		{words: []string{"apply"}, want: ""},
		{words: []string{"apply", "--fleet"}, want: ""},
		{words: []string{"jobs", "list"}, want: ""},
		{words: []string{"jobs", "nosuch"}, want: ""},
		{words: []string{"aply"}, want: ""},
		{words: []string{"apply", "--", "-"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, t.Context(), append(tt.words, completeFlag)...)
			got := strings.Fields(stdout)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want exit 0", code, stderr)
			}
			if tt.has == nil && strings.Join(got, " ") != tt.want {
				t.Errorf("candidates %q, want %q", got, tt.want)
			}
			for _, h := range tt.has {
				if !slices.Contains(got, h) {
					t.Errorf("candidates %q lack %s", got, h)
				}
			}
			if slices.Contains(got, "--version") != (len(tt.words) == 1 && tt.words[0] == "-") {
				t.Errorf("candidates %q: --version is the program's flag only", got)
			}
		})
	}
}

// TestCompletionCommand: completion prints a script per shell and refuses
// anything else (exit 2, naming the shells).
func TestCompletionCommand(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := runCLI(t, t.Context(), "completion", shell)
		if code != exitOK || !strings.Contains(stdout, completeFlag) || stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script:\n%s", shell, code, stderr, stdout)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "powershell"}, {"completion", "bash", "zsh"}} {
		code, stdout, stderr := runCLI(t, t.Context(), args...)
		if code != exitInvalid || stdout != "" || !strings.Contains(stderr, "bash, zsh, fish") {
			t.Errorf("iotjobs %s: exit %d, stdout %q, stderr %q; want exit 2 naming bash, zsh, fish", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// TestCompletionScripts runs each shell's script in that shell (skipped
// when the shell is not installed): the script parses, and completing a
// command line asks iotjobs (this test binary, as "iotjobs" on PATH) and
// offers what it says, filtered by the word typed.
func TestCompletionScripts(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "iotjobs")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), execMainEnv+"=1", "HOME="+t.TempDir())
	// Each driver completes the line in $2 with the script in $1 and
	// prints the candidates, one a line.
	drivers := map[string][]string{
		"bash": {"bash", "-c", `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _iotjobs_complete; printf '%s\n' "${COMPREPLY[@]}"`, "bash"},
		// _describe and _files are completion widgets, which need a
		// terminal: stand-ins print what they would offer.
		"zsh": {"zsh", "-f", "-c", `autoload -U compinit; compinit -u -D; source "$1"
_describe() { local -a c; c=("${(@P)2}"); print -rl -- ${(M)c:#${words[CURRENT]}*} }
_files() { }
words=(${=2}); [[ $2 == *" " ]] && words+=(""); CURRENT=${#words}; _iotjobs`, "zsh"},
		"fish": {"fish", "-c", `source $argv[1]; complete -C $argv[2]`},
	}
	lines := []struct{ line, want string }{
		{"iotjobs jo", "jobs"},
		{"iotjobs jobs ", "cancel devices list show watch"},
		{"iotjobs apply --var-f", "--var-file"},
		{"iotjobs plan plan.yaml -o ", "json markdown text"},
		{"iotjobs completion z", "zsh"},
	}
	for shell, driver := range drivers {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s is not installed", shell)
			}
			_, script, _ := runCLI(t, t.Context(), "completion", shell)
			file := filepath.Join(t.TempDir(), "iotjobs."+shell)
			writeTestFile(t, file, script)
			syntax := exec.Command(shell, "-n", file)
			if out, err := syntax.CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
			for _, l := range lines {
				cmd := exec.Command(driver[0], append(driver[1:], file, l.line)...)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				got := strings.Fields(string(out))
				slices.Sort(got)
				if err != nil || strings.Join(got, " ") != l.want {
					t.Errorf("%q: %v, candidates %q, want %q", l.line, err, got, l.want)
				}
			}
		})
	}
}
