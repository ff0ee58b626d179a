"""Scripts that run inside *other* interpreters (a kernel, a plain Python under
test, a Windows CPython under Wine): standard library only, importing nothing
of sigprobe but each other, started by path or with `-m`."""
