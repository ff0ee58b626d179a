"""Choosing an interrupt strategy: the rules that turn measured verdicts into
recommendations, written once.

A situation selects cells by platform, host and delivery (SITUATIONS below).
Every claim the reference makes is computed from the cells a situation
selects and cites them: a strategy "works" when every judged cell says
`handled`, "fails" when none does, and "depends" otherwise. No verdict is
written in this file; only what each verdict word means."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..catalog import GLANCE_STRATEGIES, PREFERENCE, SUBJECT_PREFIX

POSIX = ("linux", "macos")
WINDOWS = ("windows", "windows-wine")

# Diagnostic strategies: measured (see the matrix) but not something to choose.
NOT_A_CHOICE = {"all"}

# Verdicts that say nothing about the strategy: the cell could not run here.
UNJUDGED = ("unsupported", "error")

# How each failing verdict fails, in the words of DESIGN.md.
FAILS_HOW = {
    "deferred": "the native work did not notice; the interrupt took effect only after the call returned",
    "killed": "the default action ended the process; no handler ran",
    "ignored": "it reached the process, but the disposition was SIG_IGN / Ctrl+C disabled",
    "not-delivered": "nothing reached the process",
    "lost": "accepted by the host, but it had no effect at all",
    "hung": "no answer before the deadline",
    "flaky": "the runs disagree",
    "handled": "a handler saw it and the work stopped cleanly",
    "unsupported": "does not exist here",
    "error": "the harness could not run it",
}

# How to measure a platform: {only} is the situation's --only options.
HOW_TO_MEASURE = {
    "linux": "`scripts/sigprobe run` on Linux (every cell, into `results/linux.json`; "
             "`{only}` selects just these)",
    "macos": "`scripts/sigprobe run` on a Mac, e.g. a macOS CI runner (into `results/macos.json`; "
             "`{only}` selects just these)",
    "windows": "real Windows CI: `scripts/sigprobe run` on a Windows runner with the MSVC build "
               "(into `results/windows.json`)",
    "windows-wine": "`scripts/sigprobe run --platform windows-wine` on Linux (into `results/windows-wine.json`)",
}


def how_to_measure(platform: str, selector: "Selector") -> str:
    only = " ".join(f"--only '{platform}/{h}/*'" for h in selector.hosts)
    return HOW_TO_MEASURE.get(platform, "`scripts/sigprobe run` there (`{only}` selects just these)").format(only=only)


@dataclass(frozen=True)
class Selector:
    platforms: tuple[str, ...]
    hosts: tuple[str, ...]
    deliveries: tuple[str, ...]

    def matches(self, platform: str, cell: dict) -> bool:
        return (platform in self.platforms and cell["host"] in self.hosts
                and cell["delivery"] in self.deliveries and cell["strategy"] not in NOT_A_CHOICE
                and not cell["strategy"].startswith(SUBJECT_PREFIX))

    def describe(self) -> str:
        return (f"hosts {', '.join(f'`{h}`' for h in self.hosts)} × deliveries "
                f"{', '.join(f'`{d}`' for d in self.deliveries)} on {', '.join(self.platforms)}")


@dataclass(frozen=True)
class Situation:
    key: str
    title: str
    why: str  # what the selector stands for, one sentence
    cells: Selector
    # Cells that come closest when the situation itself is not measured here.
    nearest: Selector | None = None
    nearest_why: str = ""


# The rules. Each row: a situation, the cells that stand for it, and (when it
# cannot be measured here) the nearest cells that can.
SITUATIONS = (
    Situation("terminal", "A terminal program",
              "Ctrl+C at the keyboard (the INTR character), or SIGINT from another shell, to a program in "
              "the terminal's foreground.",
              Selector(POSIX, ("tty",), ("tty-intr", "kill", "killpg"))),
    Situation("service", "A headless process or service",
              "No controlling terminal, its own session (how daemons and kernels run); stopped with SIGINT, "
              "or with SIGTERM as service managers do.",
              Selector(POSIX, ("no-tty",), ("kill", "killpg", "sigterm"))),
    Situation("background", "A background job",
              "Started as `cmd &` by a non-interactive shell, which sets SIGINT and SIGQUIT to SIG_IGN "
              "before exec.",
              Selector(POSIX, ("background",), ("tty-intr", "kill", "killpg"))),
    Situation("win-console", "A Windows console program",
              "A program with its own console: Ctrl+C, Ctrl+Break or closing the window.",
              Selector(WINDOWS, ("console",), ("ctrl-c", "ctrl-break", "close"))),
    Situation("win-new-group", "A Windows program in a new process group",
              "Started with CREATE_NEW_PROCESS_GROUP, which disables Ctrl+C for it; Ctrl+Break still goes "
              "to the group.",
              Selector(WINDOWS, ("new-group",), ("ctrl-c", "ctrl-break"))),
    Situation("win-no-console", "A Windows program with no console",
              "Started with CREATE_NO_WINDOW or DETACHED_PROCESS (services, GUI launchers): console events "
              "cannot reach it; an event handle can.",
              Selector(WINDOWS, ("no-window", "detached"), ("ctrl-c", "ctrl-break", "set-event"))),
    Situation("pyext-terminal", "A Python C extension in a terminal",
              "A long C call inside `python` in a terminal, interrupted with Ctrl+C.",
              Selector(POSIX, ("python-tty",), ("tty-intr",))),
    Situation("pyext-headless", "A Python C extension, headless or in the background",
              "A long C call inside `python` with no terminal (SIGINT by kill/killpg) or started as "
              "`python ... &` (SIGINT ignored on entry).",
              Selector(POSIX, ("python-no-tty", "python-background"), ("kill", "killpg"))),
    Situation("jupyter-posix-signal", "In a Jupyter kernel on Linux/macOS, interrupt_mode signal",
              "The default: \"interrupt kernel\" sends SIGINT to the kernel's process group; ipykernel "
              "re-installs Python's SIGINT handler around every message.",
              Selector(POSIX, ("jupyter",), ("kernel-interrupt",))),
    Situation("jupyter-posix-message", "In a Jupyter kernel on Linux/macOS, interrupt_mode message",
              "\"Interrupt kernel\" is an `interrupt_request` on the control channel; the kernel then "
              "signals itself.",
              Selector(POSIX, ("jupyter-message",), ("kernel-interrupt",))),
    Situation("jupyter-child", "A native program started from a kernel cell",
              "A subprocess of a kernel on Linux/macOS when the user clicks \"interrupt kernel\" "
              "(interrupt_mode signal).",
              Selector(POSIX, ("jupyter-child",), ("kernel-interrupt",))),
    Situation("jupyter-windows-signal", "In a Jupyter kernel on Windows, interrupt_mode signal",
              "jupyter_client starts the kernel with an inheritable event in `JPY_INTERRUPT_EVENT` and "
              "interrupts by setting it; there is no console event.",
              Selector(WINDOWS, ("jupyter",), ("kernel-interrupt",)),
              nearest=Selector(WINDOWS, ("jupyter-launch",), ("ctrl-c", "set-event")),
              nearest_why="a native probe launched with jupyter_client's own Windows recipe (no creation "
                          "flags, the inherited event), sent the event and Ctrl+C"),
    Situation("jupyter-windows-message", "In a Jupyter kernel on Windows, interrupt_mode message",
              "\"Interrupt kernel\" is an `interrupt_request` on the control channel to a Windows kernel.",
              Selector(WINDOWS, ("jupyter-message",), ("kernel-interrupt",))),
)


# ---- evaluating the rules ----------------------------------------------------

@dataclass
class Claim:
    """One strategy in one situation, with the cells that back it."""
    strategy: str
    kind: str  # works, fails, depends
    by_verdict: dict[str, list]  # verdict -> [(source, cell)]
    latency_us: list[float] = field(default_factory=list)  # the handled cells' medians


@dataclass
class Finding:
    situation: Situation
    selector: Selector
    measured: list  # sources that have at least one selected cell
    unmeasured_platforms: list[str]
    claims: list[Claim]
    unjudged: list  # [(source, cell)] unsupported / error: with reasons and notes
    nearest: "Finding | None" = None


def evaluate(situation: Situation, sources: list, selector: Selector | None = None) -> Finding:
    """Applies one rule to the loaded sources (report.Source objects)."""
    sel = selector or situation.cells
    picked = [(s, c) for s in sources for c in s.cells if sel.matches(s.platform, c)]
    strategies: dict[str, list] = {}
    for s, c in picked:
        strategies.setdefault(c["strategy"], []).append((s, c))
    claims, unjudged = [], []
    for strategy, cells in strategies.items():
        judged = [(s, c) for s, c in cells if c["verdict"] not in UNJUDGED]
        unjudged += [(s, c) for s, c in cells if c["verdict"] in UNJUDGED]
        if not judged:
            continue
        by: dict[str, list] = {}
        for s, c in judged:
            by.setdefault(c["verdict"], []).append((s, c))
        kind = "works" if set(by) == {"handled"} else "fails" if not {"handled", "flaky"} & set(by) else "depends"
        lat = [c["latency_us"]["median"] for s, c in by.get("handled", []) if c.get("latency_us")]
        claims.append(Claim(strategy, kind, by, lat))
    measured = []
    for s, _ in picked:
        if s not in measured:
            measured.append(s)
    have = {s.platform for s in measured}
    finding = Finding(situation, sel, measured, [p for p in sel.platforms if p not in have], claims, unjudged)
    if not picked and situation.nearest and selector is None:
        finding.nearest = evaluate(situation, sources, situation.nearest)
    return finding


def evaluate_all(sources: list) -> list[Finding]:
    return [evaluate(s, sources) for s in SITUATIONS]


def latency_text(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if len(values) == 1 or fmt_us(lo) == fmt_us(hi):
        return f"median {fmt_us(statistics.median(values))}"
    return f"medians {fmt_us(lo)}–{fmt_us(hi)}"


def fmt_us(us: float) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def unjudged_groups(f: Finding) -> list[tuple[str, str, str, list]]:
    """The cells that could not run, grouped by verdict and by their Wine note
    (or, without one, their reason): [(verdict, reason, note, [(source, cell)])]."""
    out: dict[tuple, tuple] = {}
    for s, c in f.unjudged:
        note = "; ".join(c.get("notes") or [])
        reason = "; ".join(c.get("reasons") or [])
        key = (c["verdict"], note) if note else (c["verdict"], reason)
        out.setdefault(key, (c["verdict"], reason, note, []))[3].append((s, c))
    return list(out.values())


# ---- at a glance -----------------------------------------------------------------
# One table on the reference's first screen: rows are the situations, columns
# the strategies worth considering (those measured somewhere), each entry the
# claim's kind and median latency; then what to use, by PREFERENCE.

# The columns (GLANCE_STRATEGIES) and the order of PREFERENCE are catalog.py's,
# where the strategies' names are written once.
GLANCE_SYMBOL = {"works": "✓", "depends": "◐", "fails": "✗", "unjudged": "–"}


@dataclass
class GlanceEntry:
    kind: str  # works, depends, fails, or unjudged (could not run here)
    latency_us: float | None  # the median of the handled cells' medians
    cells: list  # [(source, cell)], the first is the one linked


@dataclass
class GlanceRow:
    finding: Finding
    entries: dict  # strategy -> GlanceEntry
    advice: str


def _entries(f: Finding) -> dict:
    out = {}
    for cl in f.claims:
        if cl.strategy in GLANCE_STRATEGIES:
            cells = [sc for v in sorted(cl.by_verdict) for sc in cl.by_verdict[v]]
            out[cl.strategy] = GlanceEntry(cl.kind, statistics.median(cl.latency_us) if cl.latency_us else None, cells)
    for s, c in f.unjudged:
        if c["strategy"] in GLANCE_STRATEGIES and c["strategy"] not in out:
            out[c["strategy"]] = GlanceEntry("unjudged", None, [(s, c)])
    return out


def _advice(f: Finding, entries: dict) -> str:
    if not f.measured:
        return "not measured here"
    for strategy in PREFERENCE:
        e = entries.get(strategy)
        if e and e.kind == "works":
            return f"use `{strategy}`" + (f" ({fmt_us(e.latency_us)})" if e.latency_us is not None else "")
    some = [st for st in PREFERENCE if entries.get(st) and entries[st].kind == "depends"]
    if some:
        return f"nothing works in every cell; `{some[0]}` in some"
    return "nothing measured here works"


def glance(findings: list[Finding]) -> tuple[list[str], list[GlanceRow]]:
    """The columns (strategies measured somewhere) and one row per situation."""
    rows = [GlanceRow(f, e, _advice(f, e)) for f in findings for e in (_entries(f),)]
    columns = [st for st in GLANCE_STRATEGIES if any(st in r.entries for r in rows)]
    return columns, rows


# ---- the recommended header, checked ----------------------------------------------
# Issue: `recommended` (sigprobe/interruptible.h) should be handled wherever any
# strategy is, within 2x of the best median latency there. Where a document has
# it, each (host, delivery) with a handled cell is checked, and a miss says why
# by the first rule of WHY_MISSED that applies.

RECOMMENDED = ("recommended", "recommended+nogil")
GOAL_RATIO = 2.0

# (applies(platform, host, strategy, verdict), why): the mechanism behind each kind of miss.
WHY_MISSED = (
    (lambda p, h, st, v: v == "ignored",
     "SIGINT was ignored from exec (a shell's `cmd &`): Python installs no handler, so PyErr_CheckSignals() has "
     "nothing to see; only a C handler of the extension's own catches it"),
    (lambda p, h, st, v: v == "handled" and st.endswith("+nogil"),
     "the no-GIL variant takes the GIL to check once per interval (1 ms by default); strategies that wake on "
     "the signal itself see it at once"),
    (lambda p, h, st, v: v == "handled" and (h == "jupyter-message" or (h == "jupyter" and p in WINDOWS)),
     "the interrupt needs another thread to get the GIL (the control thread in message mode; the poller on "
     "Windows): CPython hands it over only once that thread has waited its switch interval (5 ms), and handling "
     "the interrupt may take more than one hand-over"),
    (lambda p, h, st, v: v == "handled",
     "a caught signal is seen at the next clock read, about an eighth of the interval (125 µs by default), "
     "while the best strategy here wakes on the signal itself"),
)


@dataclass
class RecommendedCheck:
    source: object
    host: str
    delivery: str
    best: tuple  # (strategy, cell, median µs)
    rows: list  # [(strategy, cell or None, median µs or None, ratio or None, met, why)]


def _median(cell: dict):
    return (cell.get("latency_us") or {}).get("median")


def recommended_checks(sources: list) -> list[RecommendedCheck]:
    out = []
    for s in sources:
        groups: dict[tuple, dict] = {}
        for c in s.cells:
            if c["strategy"].startswith(SUBJECT_PREFIX):
                continue
            groups.setdefault((c["host"], c["delivery"]), {})[c["strategy"]] = c
        for (host, delivery), by in groups.items():
            if not any(r in by for r in RECOMMENDED):
                continue
            handled = [(st, c, _median(c)) for st, c in by.items() if c["verdict"] == "handled"
                       and st not in NOT_A_CHOICE and _median(c) is not None]
            if not handled:
                continue
            best = min(handled, key=lambda t: t[2])
            rows = []
            for st in RECOMMENDED:
                c = by.get(st)
                if c is None:
                    continue
                m = _median(c) if c["verdict"] == "handled" else None
                ratio = m / best[2] if m is not None and best[2] > 0 else None
                met = c["verdict"] == "handled" and ratio is not None and ratio <= GOAL_RATIO
                why = "" if met else next((w for rule, w in WHY_MISSED if rule(s.platform, host, st, c["verdict"])), "")
                rows.append((st, c, m, ratio, met, why))
            out.append(RecommendedCheck(s, host, delivery, best, rows))
    return out
