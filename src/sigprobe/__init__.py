"""The Python side of sigprobe: cell catalog, orchestration, results."""
