"""sigprobe: which interrupt handler fires, under which host, and how fast.

`sigprobe` (or `python -m sigprobe`) is the command line (sigprobe.cli);
`%load_ext sigprobe` loads the IPython magic `%sigprobe` (sigprobe.ipython).
Importing this package imports nothing else, so both start fast."""

__version__ = "0.1.0"


def load_ipython_extension(ip):
    from .ipython.magic import load_ipython_extension as load
    load(ip)


def unload_ipython_extension(ip):
    from .ipython.magic import unload_ipython_extension as unload
    unload(ip)
