"""One module per subcommand; each adds its parser with `add_parsers(sub)` and
sets `func` to the function that runs it. The subcommand's name and one-line
help are cli.COMMANDS's, so that a command imports its own module only. Shared
option types: options.py."""
