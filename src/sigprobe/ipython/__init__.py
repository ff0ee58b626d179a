"""The IPython extension: `%load_ext sigprobe` registers the `%sigprobe` magic (magic.py)."""
