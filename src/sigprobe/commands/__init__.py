"""One module per subcommand; each adds its parser with `add_parsers(sub)` and
sets `func` to the function that runs it. Shared option types: options.py."""
