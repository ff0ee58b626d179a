"""`sigprobe report`: several results documents merged into one reference, as
Markdown (results/README.md) and as one self-contained HTML page
(results/reference.html: inline CSS and SVG, no script, nothing fetched).

Each document is a *source*: one platform measured on one machine with one
interpreter. Two sources of the same platform (say linux with the project's
venv and linux with Debian's system Python) both appear, labelled by the
interpreter versions that tell them apart. A link to a cell says the cell id
only: each section names its sources once, with a marker, (a), (b)..., for
those that share a platform (see Citer)."""
from __future__ import annotations

import html
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import FLAKY, SUBJECT_PREFIX, VERDICTS, WITH_REASONS
from ..errors import BadInput
from ..results import document as results
from . import matrix as render, reference
from .reference import fmt_us

INTERPRETER_KEYS = ("python", "ipykernel", "jupyter_client", "pyzmq", "python_executable")
_KEY_NAMES = {"python": "Python", "python_executable": "interpreter"}
VERDICT_ORDER = (VERDICTS[0], FLAKY, *VERDICTS[1:])


@dataclass(eq=False)
class Source:
    path: Path
    doc: dict
    label: str = ""  # the platform, plus what tells it from the others of its platform
    versions: str = ""  # the interpreter versions that tell it from the others of its platform
    slug: str = ""  # the file stem as an HTML id, unique among the sources
    anchors: dict = field(default_factory=dict)  # cell id -> the cell's HTML id

    @property
    def platform(self) -> str:
        return self.doc["platform"]

    @property
    def cells(self) -> list[dict]:
        return self.doc["cells"]

    @property
    def machine(self) -> dict:
        return self.doc.get("machine") or {}

    def anchor(self, cell: dict) -> str:
        """A stable HTML id for a cell of this source: the file stem and the cell id."""
        return self.anchors[cell["id"]]


class Citer:
    """How one section of the reference names the cells it cites: by the cell
    id alone, since the section names its sources once ("Measured on: ...").
    Where two of its sources could have a cell of the same id (they share a
    platform, or do have one), each of them gets a marker, (a), (b)..., keyed
    where the section names its sources."""

    def __init__(self, cells: list, sources: list | None = None):
        self.sources = list(sources) if sources is not None else list(dict.fromkeys(s for s, _ in cells))
        by_id: dict[str, set] = {}
        for s, c in cells:
            by_id.setdefault(c["id"], set()).add(s)
        shared = set().union(*(g for g in by_id.values() if len(g) > 1))
        platforms = [s.platform for s in self.sources]
        marked = [s for s in self.sources if s in shared or platforms.count(s.platform) > 1]
        self.markers = {s: f"({chr(ord('a') + i) if i < 26 else i + 1})" for i, s in enumerate(marked)}

    def marker(self, source: Source) -> str:
        return self.markers.get(source, "")

    def text(self, source: Source, cell: dict) -> str:
        return cell["id"] + (" " + self.marker(source) if source in self.markers else "")

    def named(self) -> str:
        """The section's sources, each after its marker: "(a) linux (...), (b) ..."."""
        return ", ".join(f"{self.marker(s)} {s.label}" if s in self.markers else s.label for s in self.sources)


def cited_cells(f: reference.Finding) -> list:
    """Every (source, cell) a finding cites."""
    return [sc for cl in f.claims for cells in cl.by_verdict.values() for sc in cells] + list(f.unjudged)


def by_verdict(cells: list) -> list[tuple[str, list]]:
    """(source, cell) pairs grouped by verdict, in the order of VERDICT_ORDER."""
    out: dict[str, list] = {}
    for s, c in cells:
        out.setdefault(c["verdict"], []).append((s, c))
    return sorted(out.items(), key=lambda kv: VERDICT_ORDER.index(kv[0]) if kv[0] in VERDICT_ORDER else len(VERDICT_ORDER))


def _check(path: Path, doc: dict) -> dict:
    """What the report needs beyond results.load(): a platform, and every cell
    a host, strategy and delivery (taken from its id when absent)."""
    if not isinstance(doc.get("platform"), str):
        raise BadInput(f"{path}: \"platform\" is missing")
    if doc.get("machine") is not None and not isinstance(doc["machine"], dict):
        raise BadInput(f"{path}: \"machine\" is not an object")
    seen = set()
    for i, c in enumerate(doc["cells"]):
        parts = c["id"].split("/")
        if len(parts) != 4:
            raise BadInput(f"{path}: cell {i} id {c['id']!r} is not platform/host/strategy/delivery")
        if c["id"] in seen:
            raise BadInput(f"{path}: cell {c['id']} appears twice")
        seen.add(c["id"])
        for key, value in zip(("host", "strategy", "delivery"), parts[1:]):
            if not isinstance(c.get(key), str):
                c[key] = value
        if not isinstance(c.get("counts", {}), dict) or not isinstance(c.get("latency_us", {}), dict):
            raise BadInput(f"{path}: cell {c['id']} has malformed counts or latency_us")
    return doc


def load_sources(paths: list[Path]) -> list[Source]:
    unique = []
    for p in paths:
        if p.resolve() not in [q.resolve() for q in unique]:
            unique.append(p)
    sources = [Source(p, _check(p, results.load(p))) for p in unique]
    _label(sources)
    return sources


def _label(sources: list[Source]) -> None:
    """Labels: the platform, plus, where two sources share it, the interpreter
    versions that tell them apart (and the file name where those do not)."""
    by_platform: dict[str, list[Source]] = {}
    for s in sources:
        by_platform.setdefault(s.platform, []).append(s)
    for platform, group in by_platform.items():
        differ = [k for k in INTERPRETER_KEYS if len({str(o.machine.get(k)) for o in group}) > 1]
        # Python and ipykernel say it; the rest only when they are all that differs, and
        # never the interpreter's path alone (a copy of one build in another folder): the file name does.
        shown = [k for k in differ if k in ("python", "ipykernel")] or [k for k in differ[:1] if k != "python_executable"]
        for s in group:
            s.versions = ", ".join(f"{_KEY_NAMES.get(k, k)} {s.machine.get(k) or 'none'}" for k in shown)
        versions = [s.versions for s in group]
        for s in group:
            if len(group) == 1:
                s.label = platform
                continue
            told = s.versions if s.versions and versions.count(s.versions) == 1 else \
                "; ".join(x for x in (s.versions, s.path.name) if x)
            s.label = f"{platform} ({told})"
    used: set[str] = set()
    for s in sources:
        s.slug = _unique(re.sub(r"[^a-z0-9]+", "-", s.path.stem.lower()).strip("-") or "source", used)
    # Cell anchors hold a dot, which neither the slugs nor any heading's id has.
    for s in sources:
        for c in s.cells:
            cid = c["id"]
            cid = cid[len(s.platform) + 1:] if cid.startswith(s.platform + "/") else cid
            s.anchors[c["id"]] = _unique(s.slug + "." + re.sub(r"[^A-Za-z0-9_.-]", "_", cid.replace("/", ".")), used)


def _unique(name: str, used: set[str]) -> str:
    out, n = name, 2
    while out in used:
        out, n = f"{name}-{n}", n + 1
    used.add(out)
    return out


# ---- what both formats show ----------------------------------------------------

def machine_rows(sources: list[Source]) -> list[tuple[str, list[str]]]:
    keys = []
    for s in sources:
        keys += [k for k in s.machine if k not in keys]
    rows = [("platform", [s.platform for s in sources]),
            ("document", [s.path.name for s in sources]),
            ("generated", [str(s.doc.get("generated_at", "")) for s in sources]),
            ("runs per cell", [str((s.doc.get("settings") or {}).get("repeat", "")) for s in sources]),
            ("cells", [f"{len(s.cells)}" + (" (partial: interrupted)" if s.doc.get("partial") else "")
                       for s in sources])]
    for k in keys:
        rows.append((k, ["" if s.machine.get(k) is None else str(s.machine.get(k)) for s in sources]))
    return rows


SUBJECTS_TITLE = "the calls everyone uses (sigprobe check)"


def groups(source: Source) -> list[tuple[str, list[dict]]]:
    """A source's matrices: native hosts, then Python and Jupyter hosts, then
    the built-in subjects."""
    out: dict[str, list[dict]] = {}
    for c in source.cells:
        kind = (SUBJECTS_TITLE if c["strategy"].startswith(SUBJECT_PREFIX)
                else "Python and Jupyter hosts" if c["host"] in render.PYTHON_HOSTS else "native hosts")
        out.setdefault(kind, []).append(c)
    return list(out.items())


# The situations of "Is this call interruptible?", in the words a user has for them.
SUBJECT_HOSTS = {"python-tty": "terminal, ^C", "python-no-tty": "no terminal, kill",
                 "console": "console, Ctrl+C", "jupyter": "Jupyter, signal mode",
                 "jupyter-message": "Jupyter, message mode"}


def subject_table(sources: list[Source]):
    """(columns, rows): columns are (source, host) for every source with
    subject cells; rows (name, label, {column index: cell}) one per subject."""
    from ..check.subjects import BUILTINS
    columns, by = [], {}
    for s in sources:
        cells = [c for c in s.cells if c["strategy"].startswith(SUBJECT_PREFIX)]
        for host in SUBJECT_HOSTS:
            mine = {c["strategy"][len(SUBJECT_PREFIX):]: c for c in cells if c["host"] == host}
            if mine:
                by[len(columns)] = mine
                columns.append((s, host))
    names = [n for n in BUILTINS if any(n in m for m in by.values())]
    rows = [(n, BUILTINS[n].what, {i: by[i][n] for i in by if n in by[i]}) for n in names]
    return columns, rows


def subject_entry(c: dict) -> str:
    lat = c.get("latency_us", {}).get("median")
    return c["verdict"] + (f" {fmt_us(lat)}" if lat is not None and c["verdict"] == "handled" else "")


SUBJECTS_INTRO = ("Each call waits or works for about 2 s (the matmul about 1 s) and is interrupted 300 ms into it (`sigprobe check --subject "
                  "NAME` measures one, `sigprobe run --only subjects` all). `handled`: KeyboardInterrupt inside the "
                  "call, with the median latency from the interrupt; `deferred`: only when the call returned on its "
                  "own; `unsupported`: the call cannot run under that interpreter (numpy is not installed; "
                  "cysignals needs Python ≥ 3.12). To ask the same of your own code: "
                  "`sigprobe check --call mymodule:function`, or `%%sigprobe check` in a notebook.")


def subject_citer(columns, rows) -> Citer:
    """The table names its sources once, under its intro; a column says its
    source by marker, (a), (b)..., where two share a platform."""
    return Citer([(columns[i][0], c) for _, _, entries in rows for i, c in entries.items()],
                 list(dict.fromkeys(s for s, _ in columns)))


def subject_heading(citer: Citer, source: Source, host: str) -> str:
    return SUBJECT_HOSTS[host] + (f" {citer.marker(source)}" if citer.marker(source) else "")


def _md_subjects(sources: list[Source], cited: dict) -> list[str]:
    columns, rows = subject_table(sources)
    if not rows:
        return []
    citer = subject_citer(columns, rows)
    out = ["## Is this call interruptible?", "", f"{SUBJECTS_INTRO} Measured on: {citer.named()}.", "",
           "| call | " + " | ".join(subject_heading(citer, s, h) for s, h in columns) + " |",
           "|---|" + "---|" * len(columns)]
    for name, label, entries in rows:
        row = []
        for i, (s, _) in enumerate(columns):
            c = entries.get(i)
            if c is None:
                row.append("")
                continue
            cited.setdefault(s.anchor(c), (s, c))
            row.append(f"[{subject_entry(c)}](#{s.anchor(c)})")
        out.append(f"| {_md_escape(label)} | " + " | ".join(row) + " |")
    out.append("")
    return out


def _html_subjects(sources: list[Source]) -> str:
    columns, rows = subject_table(sources)
    if not rows:
        return ""
    citer = subject_citer(columns, rows)
    out = ["<h2 id=\"subjects\">Is this call interruptible?</h2>",
           f"<p class=\"muted\">{_md_code_to_html(SUBJECTS_INTRO)} Measured on: {_e(citer.named())}.</p>",
           "<div class=\"scroll\"><table class=\"glance\"><thead><tr><th>call</th>"
           + "".join(f"<th>{_e(subject_heading(citer, s, h))}</th>" for s, h in columns) + "</tr></thead><tbody>"]
    for name, label, entries in rows:
        out.append(f"<tr><th>{_e(label)}</th>")
        for i, (s, _) in enumerate(columns):
            c = entries.get(i)
            if c is None:
                out.append("<td class=\"v-none\"></td>")
                continue
            out.append(f"<td class=\"v-{_e(c['verdict'])}\" title=\"{_e(c.get('conclusion') or c['id'])}\">"
                       f"<a href=\"#{_e(s.anchor(c))}\">{_e(subject_entry(c))}</a></td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def latency_paths(source: Source) -> list[dict]:
    """Latency per delivery path (host/delivery) over the handled cells:
    the spread of the cells' medians, and the extremes of their runs."""
    paths: dict[str, list[dict]] = {}
    for c in source.cells:
        if c["strategy"].startswith(SUBJECT_PREFIX):
            continue  # the time to a KeyboardInterrupt, not to a handler
        if c["verdict"] in ("handled", "flaky") and c.get("latency_us", {}).get("median") is not None:
            paths.setdefault(f"{c['host']}/{c['delivery']}", []).append(c["latency_us"])
    out = []
    for path, lats in paths.items():
        medians = [x["median"] for x in lats]
        out.append({"path": path, "cells": len(lats), "min": min(x.get("min", x["median"]) for x in lats),
                    "median": statistics.median(medians), "median_lo": min(medians), "median_hi": max(medians),
                    "max": max(x.get("max", x["median"]) for x in lats)})
    return out


def grouped(sources: list[Source], key: str, only=lambda c: True) -> list[tuple[str, list]]:
    """Distinct `notes` or `reasons` texts, each with the cells that carry it."""
    out: dict[str, list] = {}
    for s in sources:
        for c in s.cells:
            if only(c):
                for text in c.get(key) or []:
                    out.setdefault(text, []).append((s, c))
    return list(out.items())


def is_wine(source: Source) -> bool:
    return "wine" in source.platform


# ---- Markdown ------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_link(source: Source, cell: dict, cited: dict, citer: Citer) -> str:
    cited.setdefault(source.anchor(cell), (source, cell))
    marker = citer.marker(source)
    return f"[`{cell['id']}`{' ' + marker if marker else ''}](#{source.anchor(cell)})"


CLAIM_SECTIONS = (("works", "Work", "handled in every measured cell"),
                  ("fails", "Fail", "no run handled it"),
                  ("depends", "Depend on the delivery, host, interpreter or run", "handled in some cells only"))


def _claim_sections(f: reference.Finding):
    """A finding's claims in reading order, for either rendering:
    (kind, title, gloss, [(claim, [(verdict, how, flaky rates, cells)])])."""
    for kind, title, gloss in CLAIM_SECTIONS:
        rows = []
        for cl in (c for c in f.claims if c.kind == kind):
            parts = []
            for verdict in sorted(cl.by_verdict, key=VERDICT_ORDER.index):
                cells = cl.by_verdict[verdict]
                how = reference.FAILS_HOW[verdict] if kind != "works" and verdict != "handled" else ""
                rates = [(s, c, results.flaky_rate(c)) for s, c in cells] if verdict == "flaky" else []
                parts.append((verdict, how, rates, cells))
            rows.append((cl, parts))
        if rows:
            yield kind, title, gloss, rows


def _md_claims(f: reference.Finding, cited: dict, citer: Citer) -> list[str]:
    out = []
    for kind, title, gloss, rows in _claim_sections(f):
        out.append(f"- **{title}** ({gloss}):")
        for cl, parts in rows:
            texts = []
            for verdict, how, rates, cells in parts:
                rate = "; ".join(f"{citer.text(s, c)}: {r}" for s, c, r in rates)
                texts.append(f"{verdict}{' — ' + how if how else ''}{' (' + rate + ')' if rate else ''}: "
                             + ", ".join(_md_link(s, c, cited, citer) for s, c in cells))
            lat = reference.latency_text(cl.latency_us)
            out.append(f"  - `{cl.strategy}`{' — ' + lat if lat and kind == 'works' else ''}: " + "; ".join(texts))
    if f.unjudged:
        out.append("- **Could not be judged here** (the cell could not run; the verdict says nothing about the strategy):")
        for verdict, why, note, cells in reference.unjudged_groups(f):
            out.append(f"  - {verdict}{': ' + _md_escape(why) if why else ''}{'. *' + _md_escape(note) + '*' if note else ''}"
                       f" — " + ", ".join(_md_link(s, c, cited, citer) for s, c in cells))
    return out


def _md_situation(f: reference.Finding, cited: dict) -> list[str]:
    sit = f.situation
    out = [f"### {sit.title}", "", sit.why, "", f"Cells: {f.selector.describe()}."]
    if f.measured:
        citer = Citer(cited_cells(f), f.measured)
        out[-1] += " Measured on: " + citer.named() + "."
        for p in f.unmeasured_platforms:
            out[-1] += f" Not measured on {p}: {reference.how_to_measure(p, f.selector)}."
        out.append("")
        out += _md_claims(f, cited, citer)
    else:
        how = "; ".join(reference.how_to_measure(p, f.selector) for p in f.selector.platforms)
        out += ["", f"**Not measured here.** To measure it: {how}."]
        if f.nearest and f.nearest.measured:
            citer = Citer(cited_cells(f.nearest), f.nearest.measured)
            out += ["", f"Nearest measured: {sit.nearest_why} — {f.nearest.selector.describe()}; "
                        f"measured on: {citer.named()}:", ""]
            out += _md_claims(f.nearest, cited, citer)
    out.append("")
    return out


def _md_glance(findings: list, cited: dict) -> list[str]:
    columns, rows = reference.glance(findings)
    out = ["## At a glance", "",
           "✓ handled in every measured cell, ◐ in some, ✗ in none, – could not run here, blank: not measured; "
           "with the median latency from the interrupt to the handler. Each entry links to a cell behind it; "
           "the sections below give every cell.", "",
           "| situation | " + " | ".join(f"`{c}`" for c in columns) + " | what to use |",
           "|---|" + "---|" * len(columns) + "---|"]
    for r in rows:
        row = []
        for st in columns:
            e = r.entries.get(st)
            if e is None:
                row.append("")
                continue
            s, c = e.cells[0]
            text = reference.GLANCE_SYMBOL[e.kind] + (f" {reference.fmt_us(e.latency_us)}" if e.latency_us else "")
            cited.setdefault(s.anchor(c), (s, c))
            row.append(f"[{text}](#{s.anchor(c)})")
        out.append(f"| [{r.finding.situation.title}](#{_md_slug(r.finding.situation.title)}) | "
                   + " | ".join(row) + f" | {r.advice} |")
    out.append("")
    return out


def _prefix(citer: Citer, source: Source) -> str:
    return citer.marker(source) + " " if citer.marker(source) else ""


def _recommended_entry(st, c, m, ratio, met) -> str:
    if c["verdict"] != "handled":
        return f"✗ {c['verdict']}"
    return f"{'✓' if met else '✗'} {reference.fmt_us(m)} ({ratio:.1f}×)"


def _recommended_rows(checks: list):
    """For either rendering, per check: (check, [(text, cell, met) or None for
    each of reference.RECOMMENDED], the reasons it missed, each once)."""
    for ch in checks:
        entries, whys = [], []
        for r in reference.RECOMMENDED:
            row = next((x for x in ch.rows if x[0] == r), None)
            if row is None:
                entries.append(None)
                continue
            st, c, m, ratio, met, why = row
            entries.append((_recommended_entry(st, c, m, ratio, met), c, met))
            if why and why not in whys:
                whys.append(why)
        yield ch, entries, whys


def _md_recommended(sources: list, cited: dict) -> list[str]:
    checks = reference.recommended_checks(sources)
    if not checks:
        return []
    citer = Citer([(ch.source, c) for ch in checks for _, c, *_ in ch.rows]
                  + [(ch.source, ch.best[1]) for ch in checks])
    out = ["### `recommended` (sigprobe/interruptible.h) against the best strategy", "",
           f"Its goal: handled wherever any strategy is, at a median latency within {reference.GOAL_RATIO:g}× of "
           f"the best one there (✓ met, ✗ missed, with why). Measured on: {citer.named()}.", "",
           "| host / delivery | best | " + " | ".join(f"`{r}`" for r in reference.RECOMMENDED) + " | why missed |",
           "|---|---|" + "---|" * len(reference.RECOMMENDED) + "---|"]
    for ch, entries, whys in _recommended_rows(checks):
        bst, bc, bm = ch.best
        texts = []
        for c in [bc] + [e[1] for e in entries if e]:
            cited.setdefault(ch.source.anchor(c), (ch.source, c))
        for e in entries:
            texts.append(f"[{e[0]}](#{ch.source.anchor(e[1])})" if e else "")
        out.append(f"| {_prefix(citer, ch.source)}`{ch.host}` / `{ch.delivery}` | [`{bst}` {reference.fmt_us(bm)}]"
                   f"(#{ch.source.anchor(bc)}) | " + " | ".join(texts) + f" | {_md_escape('; '.join(whys))} |")
    out.append("")
    return out


def _md_slug(title: str) -> str:
    """The anchor GitHub's Markdown gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def markdown(sources: list[Source], md_dir: Path) -> str:
    findings = reference.evaluate_all(sources)
    cited: dict = {}
    lines = ["# sigprobe reference: choosing an interrupt strategy", "",
             "Generated by `scripts/sigprobe report` from "
             + ", ".join(f"[`{s.path.name}`]({_rel(s.path, md_dir)}) ({_generation(s)})" for s in sources)
             + ". Do not edit: change the rules in `src/sigprobe/export/reference.py` or measure again.",
             "The same reference as one page, with colours and latency charts: [`reference.html`](reference.html).", "",
             "A verdict is what happened when the interrupt was sent: `handled` (a handler saw it and the work "
             "stopped cleanly), `deferred`, `killed`, `ignored`, `not-delivered`, `lost`, `hung`; `unsupported` and "
             "`error` cells could not run here (with the reason); `flaky` cells disagree between runs. Each claim "
             "below links to the cells that back it (listed at the end).", ""]
    lines += _md_glance(findings, cited)
    lines += _md_recommended(sources, cited)
    lines += _md_subjects(sources, cited)
    lines += ["## Choosing an interrupt strategy", ""]
    for f in findings:
        lines += _md_situation(f, cited)

    lines += ["## Measured on", "", "| | " + " | ".join(s.label for s in sources) + " |",
              "|---|" + "---|" * len(sources)]
    for k, vals in machine_rows(sources):
        lines.append(f"| {k} | " + " | ".join(_md_escape(v) for v in vals) + " |")
    lines.append("")

    lines += ["## Matrices", "",
              "Each entry: the cell's verdict over its runs and the median latency from delivery to the first "
              "handler; `flaky` lists how many runs gave each verdict. † marks a cell with a Wine deviation "
              "(listed below).", ""]
    for s in sources:
        for title, cells in groups(s):
            strategies, columns, by = render.matrix(cells)
            lines += [f"### {s.label} — {title}", "",
                      "| strategy | " + " | ".join(f"{h}<br>{d}" for h, d in columns) + " |",
                      "|---|" + "---|" * len(columns)]
            for st in strategies:
                row = []
                for h, d in columns:
                    c = by.get((st, h, d))
                    row.append("" if c is None else render.cell_text(c) + (" †" if c.get("notes") else ""))
                lines.append(f"| `{st}` | " + " | ".join(row) + " |")
            lines.append("")

    lines += ["## Latency per delivery path", "",
              "From delivery to the first handler, over the handled cells of each path: the extremes of all "
              "runs and the spread of the cells' medians.", ""]
    for s in sources:
        paths = latency_paths(s)
        if not paths:
            continue
        lines += [f"### {s.label}", "", "| delivery path | cells | min | medians | max |", "|---|---|---|---|---|"]
        for p in paths:
            lines.append(f"| `{p['path']}` | {p['cells']} | {fmt_us(p['min'])} | {fmt_us(p['median_lo'])}–"
                         f"{fmt_us(p['median_hi'])} (median {fmt_us(p['median'])}) | {fmt_us(p['max'])} |")
        lines.append("")

    notes = grouped(sources, "notes")
    if notes:
        citer = _section_citer(sources, notes)
        lines += ["## Wine deviations", "",
                  "Where Wine behaves unlike Windows, the cell says so; real Windows CI decides these. "
                  f"Measured on: {citer.named()}.", ""]
        for text, cells in notes:
            lines.append(f"- {_md_escape(text)} — {len(cells)} cells: " + _md_codes(cells, citer))
        lines.append("")
    reasons = grouped(sources, "reasons", lambda c: c["verdict"] in WITH_REASONS)
    if reasons:
        citer = _section_citer(sources, reasons)
        lines += ["## Reasons", "", f"Why cells could not run, hung, or disagree. Measured on: {citer.named()}.", ""]
        for text, cells in reasons:
            lines.append(f"- {_md_escape(text)} — "
                         + "; ".join(f"{v}: " + _md_codes(vc, citer) for v, vc in by_verdict(cells)))
        lines.append("")

    lines += ["## Cells cited", "", "| cell | document | verdict | runs | median latency |", "|---|---|---|---|---|"]
    for anchor, (s, c) in cited.items():
        lat = c.get("latency_us", {}).get("median")
        incomplete = results.incomplete(c)
        lines.append(f"| <a id=\"{anchor}\"></a>`{c['id']}` | {s.path.name} | {c['verdict']} | "
                     + ", ".join(f"{v} {n}" for v, n in (c.get("counts") or {}).items())
                     + (f" ({incomplete})" if incomplete else "")
                     + f" | {fmt_us(lat) if lat is not None else ''} |")
    lines.append("")
    return "\n".join(lines)


def _section_citer(sources: list[Source], grouped_cells: list) -> Citer:
    """The citer of a section that lists grouped cells of all the sources."""
    cells = [sc for _, cells in grouped_cells for sc in cells]
    return Citer(cells, [s for s in sources if any(s is t for t, _ in cells)])


def _md_codes(cells: list, citer: Citer) -> str:
    return ", ".join(f"`{c['id']}`" + (f" {citer.marker(s)}" if citer.marker(s) else "") for s, c in cells)


def _generation(s: Source) -> str:
    """What a source is beside its file name: the platform and the interpreter
    versions that tell it from the others of its platform."""
    return s.platform + (f", {s.versions}" if s.versions else "")


def _rel(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return str(path)


# ---- HTML ----------------------------------------------------------------------

# On a phone's width the wide tables scroll inside their .scroll box (the
# glance table's situations stay in view), the latency charts shrink to fit,
# and long words such as cell ids wrap rather than widen the page.
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px 32px;color:#1d2330;background:#fff}
h1{font-size:24px;margin:0 0 6px} h2{font-size:19px;margin:32px 0 10px;border-bottom:2px solid #dde3ec;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 6px} code{font:12.5px ui-monospace,Menlo,Consolas,monospace;background:#f1f3f7;padding:0 3px;border-radius:3px}
a{color:#1a56a8;text-decoration:none} a:hover{text-decoration:underline}
.muted{color:#5b6475} .legend span{display:inline-block;margin:2px 6px 2px 0;padding:2px 8px;border-radius:4px;font-size:12px}
table{border-collapse:collapse;margin:8px 0 14px} th,td{border:1px solid #d3d9e3;padding:3px 6px;vertical-align:top}
th{background:#f3f5f9;font-weight:600;text-align:left}
.scroll{overflow-x:auto;max-width:100%}
table.matrix{font-size:11.5px} table.matrix td{text-align:center;white-space:nowrap;min-width:50px}
table.matrix th.strategy{white-space:nowrap} table.matrix thead th{text-align:center}
td .lat{display:block;font-size:10.5px;opacity:.8} td .rate{display:block;font-size:10.5px}
td .inc{display:block;font-size:10.5px;font-style:italic}
table.glance th:first-child{position:sticky;left:0;background:#fff;text-align:left;min-width:9em}
table.glance td{white-space:nowrap;text-align:center} table.glance td a{color:inherit;text-decoration:none}
.g-works{background:#dff3e0} .g-depends{background:#fff3cd} .g-fails{background:#f8d7da} .g-unjudged{background:#eee}
table.glance td.advice{text-align:left;white-space:normal;min-width:12em}
sup.wine{color:#8a1c7c;font-weight:700;margin-left:2px}
.v-handled{background:#c9ecc9;color:#12501a} .v-deferred{background:#fff0b3;color:#6b5000}
.v-killed{background:#f9c4c4;color:#7a1010} .v-ignored{background:#d8dff0;color:#2c3a5c}
.v-not-delivered{background:#e6cdf0;color:#51246b} .v-lost{background:#f6cfe0;color:#74163e}
.v-hung{background:#ffc79a;color:#6d3300} .v-unsupported{background:#f2f2f2;color:#777;font-style:italic}
.v-error{background:#d6d6d6;color:#333;outline:1px dashed #888;outline-offset:-3px}
.v-flaky{background:repeating-linear-gradient(135deg,#fff0b3 0 6px,#c9ecc9 6px 12px);color:#4d3b00;font-weight:600}
.situation{border:1px solid #dde3ec;border-radius:6px;padding:4px 16px 10px;margin:12px 0;background:#fbfcfe}
.situation ul{margin:4px 0 8px;padding-left:20px} .situation li{margin:3px 0}
.kind-works{color:#12501a} .kind-fails{color:#7a1010} .kind-depends{color:#6b5000} .kind-unjudged{color:#555}
.notmeasured{background:#fff7e0;border-left:4px solid #e0a800;padding:4px 10px}
ul.notes li{margin:4px 0} svg text{font:11px system-ui,sans-serif;fill:#1d2330}
body{overflow-wrap:break-word} svg.latency{max-width:100%;height:auto} a .src{color:#5b6475}
@media (max-width:600px){body{margin:12px}}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell_td(s: Source, c: dict | None) -> str:
    if c is None:
        return "<td class=\"v-none\"></td>"
    v = c["verdict"]
    title = [f"{c['id']}: {v}", "runs: " + ", ".join(f"{k} {n}" for k, n in (c.get("counts") or {}).items())]
    if results.incomplete(c):
        title.append(results.incomplete(c))
    lat = c.get("latency_us") or {}
    if lat.get("median") is not None:
        title.append(f"latency min {fmt_us(lat.get('min', lat['median']))}, median {fmt_us(lat['median'])}, "
                     f"max {fmt_us(lat.get('max', lat['median']))}")
    if c.get("first_handler"):
        title.append("first handler: " + ", ".join(f"{h} {n}×" for h, n in c["first_handler"].items()))
    title += c.get("reasons") or []
    title += [f"Wine: {n}" if not n.startswith("Wine") else n for n in c.get("notes") or []]
    body = _e(v)
    if v == "flaky":
        body += f"<span class=\"rate\">{_e(results.flaky_rate(c))}</span>"
    if lat.get("median") is not None and v in ("handled", "flaky"):
        body += f"<span class=\"lat\">{_e(fmt_us(lat['median']))}</span>"
    if c.get("notes"):
        body += "<sup class=\"wine\">W</sup>"
    if results.incomplete(c):
        body += f"<span class=\"inc\">{c['runs_done']} of {c['runs_asked']} runs</span>"
    return (f"<td id=\"{_e(s.anchor(c))}\" class=\"v-{_e(v)}\" data-col=\"{_e(c['host'])}/{_e(c['delivery'])}\" "
            f"data-verdict=\"{_e(v)}\" title=\"{_e(chr(10).join(title))}\">{body}</td>")


def _html_matrix(s: Source, title: str, cells: list[dict]) -> str:
    strategies, columns, by = render.matrix(cells)
    hosts = []
    for h, _ in columns:
        if not hosts or hosts[-1][0] != h:
            hosts.append([h, 0])
        hosts[-1][1] += 1
    out = [f"<h3>{_e(s.label)} — {_e(title)}</h3><div class=\"scroll\">"
           f"<table class=\"matrix\" data-source=\"{_e(s.slug)}\" data-platform=\"{_e(s.platform)}\"><thead>"
           "<tr><th rowspan=\"2\">strategy</th>"
           + "".join(f"<th colspan=\"{n}\" data-host=\"{_e(h)}\">{_e(h)}</th>" for h, n in hosts) + "</tr><tr>"
           + "".join(f"<th data-col=\"{_e(h)}/{_e(d)}\">{_e(d)}</th>" for h, d in columns) + "</tr></thead><tbody>"]
    for st in strategies:
        out.append(f"<tr data-strategy=\"{_e(st)}\"><th class=\"strategy\"><code>{_e(st)}</code></th>"
                   + "".join(_cell_td(s, by.get((st, h, d))) for h, d in columns) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def latency_svg(paths: list[dict]) -> str:
    """Latency per delivery path on a log axis: a thin line from the fastest to
    the slowest run, a bar over the spread of the cells' medians, a dot at
    their median."""
    if not paths:
        return ""
    lo = min(p["min"] for p in paths)
    hi = max(p["max"] for p in paths)
    d0 = math.floor(math.log10(max(lo, 0.1)))
    d1 = max(math.ceil(math.log10(max(hi, 0.1))), d0 + 1)
    left, width, row, top = 170, 460, 22, 24
    total_w, total_h = left + width + 150, top + row * len(paths) + 8

    def x(us: float) -> float:
        return left + (math.log10(max(us, 10 ** d0)) - d0) / (d1 - d0) * width

    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"latency\" width=\"{total_w}\" height=\"{total_h}\" "
             f"viewBox=\"0 0 {total_w} {total_h}\" role=\"img\" aria-label=\"latency per delivery path\">"]
    for d in range(d0, d1 + 1):
        xd = x(10 ** d)
        parts.append(f"<line x1=\"{xd:.1f}\" y1=\"{top - 6}\" x2=\"{xd:.1f}\" y2=\"{total_h - 4}\" stroke=\"#dde3ec\"/>"
                     f"<text x=\"{xd:.1f}\" y=\"{top - 10}\" text-anchor=\"middle\">{_e(_decade(d))}</text>")
    for i, p in enumerate(paths):
        y = top + i * row + row / 2
        parts.append(
            f"<g><title>{_e(p['path'])}: {p['cells']} cells, min {_e(fmt_us(p['min']))}, medians "
            f"{_e(fmt_us(p['median_lo']))}–{_e(fmt_us(p['median_hi']))}, max {_e(fmt_us(p['max']))}</title>"
            f"<text x=\"{left - 8}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{_e(p['path'])}</text>"
            f"<line x1=\"{x(p['min']):.1f}\" y1=\"{y:.1f}\" x2=\"{x(p['max']):.1f}\" y2=\"{y:.1f}\" stroke=\"#8b97ab\" stroke-width=\"1.5\"/>"
            f"<rect x=\"{x(p['median_lo']):.1f}\" y=\"{y - 5:.1f}\" width=\"{max(x(p['median_hi']) - x(p['median_lo']), 2):.1f}\" "
            f"height=\"10\" rx=\"2\" fill=\"#6aa9e9\" opacity=\".8\"/>"
            f"<circle cx=\"{x(p['median']):.1f}\" cy=\"{y:.1f}\" r=\"4\" fill=\"#1a56a8\"/>"
            f"<text x=\"{left + width + 10}\" y=\"{y + 4:.1f}\">{_e(fmt_us(p['median']))} · {p['cells']} cells</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _decade(d: int) -> str:
    """An axis label for 10**d µs: 10 µs, 1 ms, 10 s."""
    for unit, exp in (("s", 6), ("ms", 3), ("µs", 0)):
        if d >= exp:
            return f"{10 ** (d - exp)} {unit}"
    return f"{10 ** d:g} µs"


def _html_link(s: Source, c: dict, citer: Citer) -> str:
    marker = citer.marker(s)
    return (f"<a href=\"#{_e(s.anchor(c))}\"><code>{_e(c['id'])}</code>"
            + (f" <span class=\"src\">{_e(marker)}</span>" if marker else "") + "</a>")


def _html_claims(f: reference.Finding, citer: Citer) -> str:
    out = ["<ul>"]
    for kind, title, gloss, rows in _claim_sections(f):
        out.append(f"<li><strong class=\"kind-{kind}\">{title}</strong> <span class=\"muted\">({gloss})</span><ul>")
        for cl, parts in rows:
            texts = []
            for verdict, how, rates, cells in parts:
                rate = "; ".join(f"{_e(citer.text(s, c))}: {_e(r)}" for s, c, r in rates)
                texts.append(f"<span class=\"v-{_e(verdict)}\">&nbsp;{_e(verdict)}&nbsp;</span>"
                             f"{' — ' + _e(how) if how else ''}{' (' + rate + ')' if rate else ''}: "
                             + ", ".join(_html_link(s, c, citer) for s, c in cells))
            lat = reference.latency_text(cl.latency_us)
            out.append(f"<li><code>{_e(cl.strategy)}</code>{' — ' + _e(lat) if lat and kind == 'works' else ''}: "
                       + "; ".join(texts) + "</li>")
        out.append("</ul></li>")
    if f.unjudged:
        out.append("<li><strong class=\"kind-unjudged\">Could not be judged here</strong> <span class=\"muted\">(the "
                   "cell could not run; the verdict says nothing about the strategy)</span><ul>")
        for verdict, why, note, cells in reference.unjudged_groups(f):
            out.append(f"<li><span class=\"v-{_e(verdict)}\">&nbsp;{_e(verdict)}&nbsp;</span>"
                       f"{': ' + _e(why) if why else ''}{'. <em>' + _e(note) + '</em>' if note else ''} — "
                       + ", ".join(_html_link(s, c, citer) for s, c in cells) + "</li>")
        out.append("</ul></li>")
    out.append("</ul>")
    return "".join(out)


def _md_code_to_html(text: str) -> str:
    """The few Markdown code spans in the rule texts, as <code>."""
    return re.sub(r"`([^`]+)`", lambda m: f"<code>{m.group(1)}</code>", _e(text))


def _html_situation(f: reference.Finding) -> str:
    sit = f.situation
    out = [f"<div class=\"situation\" id=\"s-{_e(sit.key)}\"><h3>{_e(sit.title)}</h3><p>{_md_code_to_html(sit.why)}</p>"
           f"<p class=\"muted\">Cells: {_md_code_to_html(f.selector.describe())}."]
    if f.measured:
        citer = Citer(cited_cells(f), f.measured)
        out.append(" Measured on: " + _e(citer.named()) + ".")
        for p in f.unmeasured_platforms:
            out.append(f" Not measured on {_e(p)}: {_md_code_to_html(reference.how_to_measure(p, f.selector))}.")
        out.append("</p>" + _html_claims(f, citer))
    else:
        how = "; ".join(reference.how_to_measure(p, f.selector) for p in f.selector.platforms)
        out.append(f"</p><p class=\"notmeasured\"><strong>Not measured here.</strong> To measure it: "
                   f"{_md_code_to_html(how)}.</p>")
        if f.nearest and f.nearest.measured:
            citer = Citer(cited_cells(f.nearest), f.nearest.measured)
            out.append(f"<p>Nearest measured: {_e(sit.nearest_why)} — {_md_code_to_html(f.nearest.selector.describe())}; "
                       f"measured on: {_e(citer.named())}:</p>" + _html_claims(f.nearest, citer))
    out.append("</div>")
    return "".join(out)


def _html_glance(findings: list) -> str:
    columns, rows = reference.glance(findings)
    out = ["<h2 id=\"glance\">At a glance</h2><p class=\"muted\">✓ handled in every measured cell, ◐ in some, "
           "✗ in none, – could not run here, blank: not measured; with the median latency from the interrupt to "
           "the handler. Each entry links to a cell behind it (hover for all of them).</p>",
           "<div class=\"scroll\"><table class=\"glance\"><thead><tr><th>situation</th>"
           + "".join(f"<th><code>{_e(c)}</code></th>" for c in columns) + "<th>what to use</th></tr></thead><tbody>"]
    for r in rows:
        sit = r.finding.situation
        out.append(f"<tr><th><a href=\"#s-{_e(sit.key)}\">{_e(sit.title)}</a></th>")
        for st in columns:
            e = r.entries.get(st)
            if e is None:
                out.append("<td class=\"v-none\"></td>")
                continue
            s, c = e.cells[0]
            lat = f" {reference.fmt_us(e.latency_us)}" if e.latency_us else ""
            title = "\n".join(f"{cc['id']}: {cc['verdict']}" for _, cc in e.cells)
            out.append(f"<td class=\"g-{_e(e.kind)}\" title=\"{_e(title)}\"><a href=\"#{_e(s.anchor(c))}\">"
                       f"{reference.GLANCE_SYMBOL[e.kind]}{_e(lat)}</a></td>")
        out.append(f"<td class=\"advice\">{_md_code_to_html(r.advice)}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _html_recommended(sources: list) -> str:
    checks = reference.recommended_checks(sources)
    if not checks:
        return ""
    citer = Citer([(ch.source, c) for ch in checks for _, c, *_ in ch.rows]
                  + [(ch.source, ch.best[1]) for ch in checks])
    out = ["<h3 id=\"recommended\"><code>recommended</code> (sigprobe/interruptible.h) against the best strategy</h3>",
           f"<p class=\"muted\">Its goal: handled wherever any strategy is, at a median latency within "
           f"{reference.GOAL_RATIO:g}× of the best one there (✓ met, ✗ missed, with why). Measured on: "
           f"{_e(citer.named())}.</p><div class=\"scroll\"><table class=\"recommended\"><thead><tr>"
           "<th>host / delivery</th><th>best</th>"
           + "".join(f"<th><code>{_e(r)}</code></th>" for r in reference.RECOMMENDED)
           + "<th>why missed</th></tr></thead><tbody>"]
    for ch, entries, whys in _recommended_rows(checks):
        bst, bc, bm = ch.best
        cells = [f"<td class=\"g-{'works' if e[2] else 'fails'}\"><a href=\"#{_e(ch.source.anchor(e[1]))}\">"
                 f"{_e(e[0])}</a></td>" if e else "<td></td>" for e in entries]
        out.append(f"<tr><th>{_e(_prefix(citer, ch.source))}<code>{_e(ch.host)}</code> / <code>{_e(ch.delivery)}</code></th>"
                   f"<td><a href=\"#{_e(ch.source.anchor(bc))}\"><code>{_e(bst)}</code> {_e(reference.fmt_us(bm))}</a></td>"
                   + "".join(cells) + f"<td class=\"advice\">{_md_code_to_html('; '.join(whys))}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def html_page(sources: list[Source]) -> str:
    findings = reference.evaluate_all(sources)
    legend = "".join(f"<span class=\"v-{v}\">{v}</span>" for v in VERDICT_ORDER)
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           "<title>sigprobe reference: choosing an interrupt strategy</title>"
           f"<style>{CSS}</style></head><body>",
           "<h1>sigprobe reference: choosing an interrupt strategy</h1>",
           "<p class=\"muted\">Generated by <code>scripts/sigprobe report</code> from "
           + ", ".join(f"<code>{_e(s.path.name)}</code> ({_e(_generation(s))})" for s in sources)
           + ". Every claim links to the matrix cells that back it; hover a cell for its runs, latency, "
             "reasons and Wine notes.</p>",
           f"<p class=\"legend\">{legend} <span class=\"muted\">W = Wine deviation (listed below)</span></p>",
           _html_glance(findings),
           _html_recommended(sources),
           *([_html_subjects(sources)] if subject_table(sources)[1] else []),
           "<h2 id=\"choosing\">Choosing an interrupt strategy</h2>"]
    out += [_html_situation(f) for f in findings]

    out.append("<h2 id=\"machines\">Measured on</h2><div class=\"scroll\"><table class=\"machines\"><thead><tr><th></th>"
               + "".join(f"<th>{_e(s.label)}</th>" for s in sources) + "</tr></thead><tbody>")
    for k, vals in machine_rows(sources):
        out.append(f"<tr><th>{_e(k)}</th>" + "".join(f"<td>{_e(v)}</td>" for v in vals) + "</tr>")
    out.append("</tbody></table></div>")

    out.append("<h2 id=\"matrices\">Matrices</h2><p class=\"muted\">Rows are strategies, columns host × delivery. "
               "Each entry: the verdict over the cell's runs (a flaky cell with the share of each verdict) and the "
               "median latency from delivery to the first handler.</p>")
    for s in sources:
        for title, cells in groups(s):
            out.append(_html_matrix(s, title, cells))

    out.append("<h2 id=\"latency\">Latency per delivery path</h2><p class=\"muted\">From delivery to the first "
               "handler over the handled cells of each host/delivery path (log scale): the line spans the fastest "
               "to the slowest run, the bar the cells' medians, the dot their median.</p>")
    for s in sources:
        svg = latency_svg(latency_paths(s))
        if svg:
            out.append(f"<h3>{_e(s.label)}</h3>{svg}")

    notes = grouped(sources, "notes")
    if notes:
        citer = _section_citer(sources, notes)
        out.append("<h2 id=\"wine\">Wine deviations</h2><p class=\"muted\">Where Wine behaves unlike Windows, the "
                   f"cell says so; real Windows CI decides these. Measured on: {_e(citer.named())}.</p><ul class=\"notes\">")
        for text, cells in notes:
            out.append(f"<li>{_e(text)} — {len(cells)} cells: " + ", ".join(_html_link(s, c, citer) for s, c in cells)
                       + "</li>")
        out.append("</ul>")
    reasons = grouped(sources, "reasons", lambda c: c["verdict"] in WITH_REASONS)
    if reasons:
        citer = _section_citer(sources, reasons)
        out.append(f"<h2 id=\"reasons\">Reasons</h2><p class=\"muted\">Measured on: {_e(citer.named())}.</p>"
                   "<ul class=\"notes\">")
        for text, cells in reasons:
            out.append(f"<li>{_e(text)} — " + "; ".join(
                f"<span class=\"v-{_e(v)}\">&nbsp;{_e(v)}&nbsp;</span>: " + ", ".join(_html_link(s, c, citer) for s, c in vc)
                for v, vc in by_verdict(cells)) + "</li>")
        out.append("</ul>")
    out.append("</body></html>\n")
    return "\n".join(out)
