"""Checks several test files share."""


def one_error_line(r) -> str:
    """Bad input's contract: exit 2 and one line on stderr, never a traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]
