"""sigprobe: which interrupt handler fires, under which host, and how fast.

`sigprobe` (or `python -m sigprobe`) is the command line (sigprobe.cli);
`%load_ext sigprobe` loads the IPython magic `%sigprobe` (sigprobe.ipython).
Importing this package imports nothing else, so both start fast."""

__version__ = "0.1.0"


def get_include() -> str:
    """The directory to put on a C compiler's include path for
    <sigprobe/interruptible.h>, the recommended interrupt pattern for extensions."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def load_ipython_extension(ip):
    from .ipython.magic import load_ipython_extension as load
    load(ip)


def unload_ipython_extension(ip):
    from .ipython.magic import unload_ipython_extension as unload
    unload(ip)
