"""The matrix: rows are strategies, columns host × delivery, each cell its
verdict and median latency. The same table as text and as Markdown."""
from __future__ import annotations

from .. import trace as tracemod
from ..catalog import WITH_REASONS
from ..results import document as results


def _order(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def cell_text(cell: dict | None) -> str:
    if cell is None:
        return ""
    v = cell["verdict"]
    if v == "flaky":
        v = "flaky (" + ", ".join(f"{k} {n}" for k, n in cell["counts"].items()) + ")"
    lat = cell.get("latency_us")
    if lat and cell["verdict"] in ("handled", "flaky"):
        v += f" {_fmt_us(lat['median'])}"
    incomplete = results.incomplete(cell)
    return f"{v} ({incomplete})" if incomplete else v


def _fmt_us(us: float) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def matrix(cells: list[dict]) -> tuple[list[str], list[tuple[str, str]], dict]:
    strategies = _order(c["strategy"] for c in cells)
    columns = _order((c["host"], c["delivery"]) for c in cells)
    by = {(c["strategy"], c["host"], c["delivery"]): c for c in cells}
    return strategies, columns, by


PYTHON_HOSTS = {"python-tty", "python-no-tty", "python-background", "jupyter", "jupyter-message", "jupyter-child"}


def _groups(cells: list[dict]) -> list[tuple[str, list[dict]]]:
    """Cells grouped by platform and kind of host, each its own table."""
    groups: dict[str, list[dict]] = {}
    for c in cells:
        kind = " — Python and Jupyter hosts" if c.get("host") in PYTHON_HOSTS else ""
        groups.setdefault(c["id"].split("/")[0] + kind, []).append(c)
    return list(groups.items())


def text_matrix(cells: list[dict]) -> str:
    out = []
    for title, group in _groups(cells):
        strategies, columns, by = matrix(group)
        head = ["strategy"] + [f"{h}/{d}" for h, d in columns]
        rows = [[s] + [cell_text(by.get((s, h, d))) for h, d in columns] for s in strategies]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        out.append(title)
        for r in [head] + rows:
            out.append("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
        out.append("")
    return "\n".join(out)


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [f"# sigprobe results: {doc['platform']}", "",
             f"Generated {doc['generated_at']} by `scripts/sigprobe run` "
             f"({doc['settings'].get('repeat')} runs per cell).", "",
             "| machine | |", "|---|---|"]
    for k, v in m.items():
        lines.append(f"| {k} | {v} |")
    lines.append("")
    if doc.get("partial"):
        lines += ["**Partial:** the run was interrupted; only finished cells are listed.", ""]
    lines += ["Each entry: the cell's verdict over its runs and the median latency from delivery to the",
              "first handler (stamped inside the handler). `flaky` lists how many runs gave each verdict.", ""]
    for title, group in _groups(doc["cells"]):
        strategies, columns, by = matrix(group)
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| strategy | " + " | ".join(f"{h}<br>{d}" for h, d in columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for s in strategies:
            lines.append(f"| `{s}` | " + " | ".join(_md_entry(by.get((s, h, d))) for h, d in columns) + " |")
        lines.append("")
    racy = [c for c in doc["cells"] if len(c.get("first_handler", {})) > 1]
    if racy:
        lines += ["## Cells where different handlers took the interrupt", ""]
        for c in racy:
            lines.append(f"- `{c['id']}`: " + ", ".join(f"{h} {n}×" for h, n in c["first_handler"].items()))
        lines.append("")
    reasons = [c for c in doc["cells"] if c["verdict"] in WITH_REASONS and c.get("reasons")]
    if reasons:
        lines += ["## Reasons", ""]
        for c in reasons:
            lines.append(f"- `{c['id']}` ({c['verdict']}): " + "; ".join(c["reasons"]))
        lines.append("")
    lines += _kernel_section(doc)
    notes = [c for c in doc["cells"] if c.get("notes")]
    if notes:
        lines += ["## Notes", ""]
        for c in notes:
            lines.append(f"- `{c['id']}`: " + "; ".join(c["notes"]))
        lines.append("")
    return "\n".join(lines)


# ---- --trace (trace.py): the kernel's record beside the probe's verdict ----

def _md_entry(cell: dict | None) -> str:
    kernel = tracemod.cell_kernel_text(cell) if cell else ""
    return cell_text(cell) + (f"<br>kernel: {kernel}" if kernel else "")


def _kernel_section(doc: dict) -> list[str]:
    if doc.get("settings", {}).get("trace") is None:
        return []
    if doc["settings"]["trace"] == "unsupported":
        return ["## The kernel's record", "", f"Not traced: {doc['settings'].get('trace_reason')}.", ""]
    lines = ["## The kernel's record", "",
             "With `--trace` each entry also shows what the kernel recorded for the delivered signal",
             "(`signal:signal_generate`, `signal:signal_deliver`): who generated it, its result, and how it",
             "was taken — `handler`, `default`, `ignored`, or `queued` (never passed through signal delivery:",
             "taken by sigwaitinfo()/signalfd, or left pending).", ""]
    bad = tracemod.disagreements(doc)
    lines += (["Runs where the probe's verdict and the kernel's record disagree:", "", *bad, ""] if bad else
              ["In every traced run the probe's verdict agrees with the kernel's record.", ""])
    return lines
