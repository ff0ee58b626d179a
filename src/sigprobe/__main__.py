"""`python -m sigprobe`: the same command as `sigprobe`."""
import sys

from sigprobe.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
