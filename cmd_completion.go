// The completion command: shell completion scripts, and the candidates
// they ask iotjobs for.

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeFlag, as the last argument, asks for the completions of the
// words before it instead of running them: the words typed so far, and the
// word under the cursor when it starts with "-" (urfave/cli's protocol).
const completeFlag = "--generate-bash-completion"

// shells are the shells completion writes scripts for.
var shells = []string{"bash", "zsh", "fish"}

func completionCmd() *cli.Command {
	return &cli.Command{
		Name:  "completion",
		Usage: "print the shell completion script for bash, zsh or fish: commands, subcommands and flags",
		Description: "Examples:\n" +
			"   source <(iotjobs completion bash)       # in ~/.bashrc\n" +
			"   source <(iotjobs completion zsh)        # in ~/.zshrc, after compinit\n" +
			"   iotjobs completion fish > ~/.config/fish/completions/iotjobs.fish",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: name one shell: %s", strings.Join(shells, ", "))
			}
			script, ok := completionScripts[c.Args().First()]
			if !ok {
				return usagef("completion: unknown shell %q: use %s", c.Args().First(), strings.Join(shells, ", "))
			}
			_, err := io.WriteString(c.App.Writer, script)
			return err
		},
	}
}

// complete writes the candidates for the next word after words (the
// arguments without the program name and completeFlag), one a line; the
// shell filters them by what is typed. Nothing means "complete file
// names". It works from the arguments it is given rather than os.Args,
// unlike urfave/cli's own completion, so that tests can call run.
func complete(w io.Writer, cmds []*cli.Command, words []string) {
	var cmd *cli.Command
	atCommand := true // the last word named a command (or there is none)
	for i, word := range words {
		if word == "--" && i < len(words)-1 {
			return // only arguments follow
		}
		atCommand = false
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(word) {
				next = c
			}
		}
		if next != nil {
			cmd, cmds, atCommand = next, next.Subcommands, true
		} else {
			cmds = nil // a flag or an argument: no command follows
		}
	}
	var flags []cli.Flag
	if cmd != nil {
		flags = cmd.VisibleFlags()
	}
	if len(words) > 0 {
		last := words[len(words)-1]
		if name, isFlag := strings.CutPrefix(last, "-"); isFlag {
			name = strings.TrimPrefix(name, "-")
			if f := findFlag(flags, name); f != nil && takesValue(f) {
				printLines(w, flagChoices(f))
				return
			}
			if !strings.Contains(name, "=") {
				printLines(w, flagNames(flags, cmd == nil))
			}
			return
		}
	}
	switch {
	case atCommand && cmd == nil:
		printLines(w, commandNames(cmds))
	case atCommand && len(cmd.Subcommands) > 0:
		printLines(w, commandNames(cmd.Subcommands))
	case atCommand && cmd.Name == "completion":
		printLines(w, shells)
	}
}

// flagChoices are the values of a flag that takes one of a few: an
// --output lists them at the head of its usage ("table, wide, json,
// jsonl or yaml (default: …)"), which is what the command accepts.
func flagChoices(f cli.Flag) []string {
	sf, ok := f.(*cli.StringFlag)
	if !ok || sf.Name != "output" {
		return nil
	}
	head, _, _ := strings.Cut(sf.Usage, "(")
	var out []string
	for _, part := range strings.Split(strings.ReplaceAll(head, " or ", ", "), ",") {
		if v := strings.TrimSpace(part); v != "" && !strings.Contains(v, " ") {
			out = append(out, v)
		}
	}
	return out
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

// flagNames are a command's flags as typed, --help included (and
// --version for the program itself).
func flagNames(flags []cli.Flag, top bool) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, "--"+n)
			}
		}
	}
	out = append(out, "--help")
	if top {
		out = append(out, "--version")
	}
	return out
}

func commandNames(cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c.Name)
		}
	}
	return out
}

func printLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// completionScripts ask iotjobs for the candidates (complete) as
// urfave/cli's autocomplete scripts do, but without eval: the words typed
// are passed as they are, never run as shell code.
var completionScripts = map[string]string{
	"bash": `# bash completion for iotjobs; load it with
#   source <(iotjobs completion bash)
_iotjobs_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  words[0]=${words[0]/#\~/$HOME}
  if [[ $cur == -* ]]; then
    words+=("$cur")
  fi
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$("${words[@]}" ` + completeFlag + ` 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _iotjobs_complete iotjobs
`,
	"zsh": `#compdef iotjobs
# zsh completion for iotjobs; load it with
#   source <(iotjobs completion zsh)
# after compinit, or save it as _iotjobs in a directory of $fpath.
_iotjobs() {
  local cur=${words[CURRENT]}
  local -a args opts
  args=("${(@Q)words[1,CURRENT-1]}")
  [[ ${args[1]} == '~/'* ]] && args[1]=$HOME/${args[1]#\~/}
  if [[ $cur == -* ]]; then
    args+=("${(Q)cur}")
  fi
  opts=("${(@f)$("${args[@]}" ` + completeFlag + ` 2>/dev/null)}")
  if [[ -n ${opts[1]} ]]; then
    _describe 'iotjobs' opts
  else
    _files
  fi
}
if [[ $funcstack[1] == _iotjobs ]]; then
  _iotjobs "$@"
else
  compdef _iotjobs iotjobs
fi
`,
	"fish": `# fish completion for iotjobs; install it with
#   iotjobs completion fish > ~/.config/fish/completions/iotjobs.fish
function __iotjobs_candidates
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    if string match -q -- '-*' $cur
        set -a words $cur
    end
    $words ` + completeFlag + ` 2>/dev/null
end

function __iotjobs_has_candidates
    set -l candidates (__iotjobs_candidates)
    test (count $candidates) -gt 0
end

# Where iotjobs has no candidates (a plan, a file after a flag), fish
# completes file names as usual.
complete -c iotjobs -f -n __iotjobs_has_candidates -a '(__iotjobs_candidates)'
`,
}
