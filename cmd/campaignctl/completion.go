package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// commandFlags are the flags completion offers after each command (a
// static list: keep it in step with the commands' flag sets).
var commandFlags = map[string][]string{
	"lint":        {"--offline", "--json", "--dns", "--render", "--skip-invalid", "--timeout", "--allow-outside"},
	"preview":     {"--recipient", "--email", "--json", "--allow-outside"},
	"launch":      {"--at", "--skip-invalid", "-q", "--allow-outside"},
	"list":        {"--json"},
	"status":      {"--json", "--watch", "--detail", "--by", "--top", "--interval", "--recipient"},
	"pause":       {"--wait"},
	"resume":      {"--wait"},
	"cancel":      {"--wait"},
	"report":      {"-o", "--json", "--outcome"},
	"delete":      {"--force", "--yes", "--wait"},
	"suppression": {"add", "remove", "check", "list", "import", "export"},
	"send":        {"--from", "--to", "--subject", "--text", "--wait"},
	"limits":      {"show", "set", "reset", "--json", "--rate", "--concurrency", "--for", "--new"},
	"sources":     {"--json"},
	"feedback":    {"classify", "--json"},
	"completion":  {"bash", "zsh", "fish"},
}

// completion is registered here: its script lists the commands.
func init() {
	commands["completion"] = command{"print a shell completion script: completion bash|zsh|fish", cmdCompletion}
}

var globalFlags = []string{"-redis", "-redis-cluster", "-config", "-prefix"}

func cmdCompletion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "completion", "bash|zsh|fish",
		"Prints a completion script for the shell: commands, their flags and subcommands.\n"+
			"  bash: source <(campaignctl completion bash)\n"+
			"  zsh:  source <(campaignctl completion zsh)\n"+
			"  fish: campaignctl completion fish | source",
		"campaignctl completion bash > /etc/bash_completion.d/campaignctl")
	shell, err := oneArg(fs, args, "shell (bash, zsh or fish)")
	if err != nil {
		return err
	}
	switch shell {
	case "bash":
		bashCompletion(e.stdout)
	case "zsh":
		fmt.Fprintln(e.stdout, "autoload -U +X bashcompinit && bashcompinit")
		bashCompletion(e.stdout)
	case "fish":
		fishCompletion(e.stdout)
	default:
		return fmt.Errorf("unknown shell %q (want bash, zsh or fish): %w", shell, errUsage)
	}
	return nil
}

func bashCompletion(w io.Writer) {
	fmt.Fprintf(w, `# campaignctl completion for bash (and zsh via bashcompinit)
_campaignctl() {
  local cur cmd i
  cur="${COMP_WORDS[COMP_CWORD]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -redis|-redis-cluster|-config|-prefix|--redis|--redis-cluster|--config|--prefix) i=$((i + 1)) ;;
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "$cmd" in
    "") COMPREPLY=($(compgen -W %q -- "$cur")) ;;
`, strings.Join(append(slices.Clone(order), globalFlags...), " "))
	for _, c := range order {
		fmt.Fprintf(w, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c, strings.Join(append(slices.Clone(commandFlags[c]), globalFlags...), " "))
	}
	fmt.Fprint(w, `  esac
  if [[ ${#COMPREPLY[@]} -eq 0 ]]; then COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _campaignctl campaignctl
`)
}

func fishCompletion(w io.Writer) {
	fmt.Fprintln(w, "# campaignctl completion for fish")
	fmt.Fprintln(w, "complete -c campaignctl -f")
	for _, g := range globalFlags {
		fmt.Fprintf(w, "complete -c campaignctl -o %s -r\n", strings.TrimPrefix(g, "-"))
	}
	for _, c := range order {
		fmt.Fprintf(w, "complete -c campaignctl -n __fish_use_subcommand -a %s -d %q\n", c, commands[c].summary)
		for _, f := range commandFlags[c] {
			if strings.HasPrefix(f, "-") {
				fmt.Fprintf(w, "complete -c campaignctl -n '__fish_seen_subcommand_from %s' -l %s\n", c, strings.TrimLeft(f, "-"))
			} else {
				fmt.Fprintf(w, "complete -c campaignctl -n '__fish_seen_subcommand_from %s' -a %s\n", c, f)
			}
		}
	}
}
