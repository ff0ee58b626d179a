"""`sigprobe report` and `sigprobe compare` on small fixture documents: the
merged Markdown and HTML, the reference's claims and the cells they cite,
compare's differences and exit codes, broken inputs, and the HTML page as
headless Chromium renders it."""
import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sigprobe.export import reference, report
from sigprobe.results import compare
import helpers

FIX = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
VENV = FIX / "linux-venv.json"
SYSTEM = FIX / "linux-system.json"
WINE = FIX / "windows-wine.json"
WINDOWS = FIX / "windows.json"
BROKEN = ["not-json.json", "wrong-schema.json", "truncated.json"]
CHROMIUM = "/usr/bin/chromium"


def one_error_line(r, name: str) -> str:
    line = helpers.one_error_line(r)
    assert name in line
    return line


@pytest.fixture(scope="module")
def merged(sigprobe, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    r = sigprobe("report", str(VENV), str(SYSTEM), str(WINE), "--md", str(out / "README.md"),
                 "--html", str(out / "reference.html"))
    assert r.returncode == 0, r.stderr
    return r, (out / "README.md").read_text(), (out / "reference.html").read_text(), out / "reference.html"


def section(md: str, title: str) -> str:
    start = md.index(f"### {title}\n")
    end = md.find("\n### ", start + 1)
    return md[start:end if end > 0 else None]


# ---- report: the merged documents ---------------------------------------------

def glance_rows(md: str) -> dict[str, list[str]]:
    """The at-a-glance table: situation title -> its cells, the last one the advice."""
    table = md.split("## At a glance\n")[1].split("\n## ")[0]
    rows = {}
    for line in table.splitlines()[4:]:
        if line.startswith("| ["):
            cells = [c.strip() for c in line.rstrip(" |").split(" | ")]
            rows[cells[0].split("](")[0].lstrip("| [")] = cells[1:]
    return rows


def test_at_a_glance_comes_first_and_every_entry_links_to_a_cited_cell(merged):
    _, md, page, _ = merged
    assert md.index("## At a glance") < md.index("## Choosing an interrupt strategy")
    rows = glance_rows(md)
    assert list(rows) == [s.title for s in reference.SITUATIONS]
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', md))
    links = re.findall(r"\[[✓◐✗–][^\]]*\]\(#([^)]+)\)", md.split("## At a glance")[1].split("\n## ")[0])
    assert links and set(links) <= anchors, set(links) - anchors
    # The same in the page: each entry's link lands on a cell of a matrix.
    ids = set(re.findall(r'<td id="([^"]+)"', page))
    glance = page.split('<table class="glance">')[1].split("</table>")[0]
    hrefs = re.findall(r'<td class="g-[a-z]+" title="[^"]*"><a href="#([^"]+)"', glance)
    assert hrefs and set(hrefs) <= ids
    assert rows["A terminal program"][-1].startswith("use `")


def test_at_a_glance_shows_an_unmeasured_situation_as_not_measured(sigprobe, tmp_path):
    r = sigprobe("report", str(VENV), "--md", str(tmp_path / "README.md"), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    rows = glance_rows((tmp_path / "README.md").read_text())
    windows = rows["A Windows console program"]
    assert windows[-1] == "not measured here"
    assert all(c == "" for c in windows[:-1]), "not measured is not failing"


def test_two_documents_of_one_platform_are_told_apart_by_their_interpreters(merged):
    _, md, page, _ = merged
    for label in ("linux (Python 3.11.7, ipykernel 7.4.0)", "linux (Python 3.11.2, ipykernel 6.17.1)"):
        assert f"### {label} — native hosts" in md
        assert f"{label} — native hosts</h3>" in page.replace("&quot;", '"')
    header = next(line for line in md.splitlines() if line.startswith("| | "))
    assert header.count("linux (") == 2 and "windows-wine" in header


def test_machine_table_shows_each_columns_versions(merged):
    _, md, _, _ = merged
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.split("## Measured on")[1].split("## Matrices")[0].splitlines() if line.startswith("| ")}
    assert rows["ipykernel"] == ["7.4.0", "6.17.1", ""]
    assert rows["python_executable"] == ["", "/usr/bin/python3", ""]
    assert rows["compiler"] == ["gcc 12.2.0", "gcc 12.2.0", "gcc 12-win32"]
    assert rows["runs per cell"] == ["3", "3", "1"]


def test_matrix_shows_verdict_latency_and_flaky_counts(merged):
    _, md, page, _ = merged
    assert "| `sigaction` | handled 45 µs | handled 14 µs | killed |" in md
    assert "flaky (deferred 1, handled 2) 1.2 ms" in md
    assert "handled 2/3, deferred 1/3" in page


def test_every_wine_deviation_is_listed_with_its_cells(merged):
    _, md, page, _ = merged
    wine = md.split("## Wine deviations")[1]
    assert "GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) is not implemented" in wine
    assert "`windows-wine/console/none/ctrl-break`" in wine
    assert "error †" in md  # the matrix marks the cell
    assert 'id="wine"' in page and "real Windows delivers it" in page


def test_latency_per_delivery_path_is_an_inline_svg(merged):
    _, md, page, _ = merged
    assert "| `no-tty/kill` | 1 | 10 µs | 14 µs–14 µs (median 14 µs) | 40 µs |" in md
    assert page.count("<svg") == 3 and "<svg" in page.split('id="latency"')[1]


def test_html_page_is_self_contained(merged):
    _, _, page, _ = merged
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not [h for h in re.findall(r'(?:href|src)="([^"]*)"', page) if not h.startswith("#")]
    # Every in-page link lands on an element of the page.
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert {h[1:] for h in re.findall(r'href="(#[^"]+)"', page)} <= ids


def md_table(md: str, title: str) -> list[list[str]]:
    """The rows of the first table under a `## ` heading, as lists of cell texts."""
    body = md.split(f"\n## {title}\n")[1].split("\n## ")[0]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in body.splitlines() if line.startswith("| ")]


MD_CITE = re.compile(r"\[`([^`\]]+)`(?: \(([a-z])\))?\]\(#([^)]+)\)")
HTML_CITE = re.compile(r'<a href="#([^"]+)"><code>([^<]+)</code>(?: <span class="src">\(([a-z])\)</span>)?</a>')


def check_citations(md: str) -> int:
    """Every link to a cell in "Choosing an interrupt strategy" says the cell id
    and, where needed, a marker that the section's "Measured on" keys to the
    document the link leads to. Returns how many markers it checked."""
    machines = {row[0]: row[1:] for row in md_table(md, "Measured on")}
    label_of = dict(zip(machines["document"], machines[""]))
    cited = {re.search(r'id="([^"]+)"', row[0])[1]: (row[0].split("`")[1], row[1]) for row in md_table(md, "Cells cited")[1:]}
    choosing = md.split("\n## Choosing an interrupt strategy\n")[1].split("\n## ")[0]
    marked = 0
    for sec in choosing.split("\n### ")[1:]:
        found = re.search(r"[Mm]easured on: (.*?)(?:\. Not measured|[.:]\n)", sec)
        links = MD_CITE.findall(sec)
        if not links:
            continue
        named = found[1]
        seen = {}
        for cell_id, marker, anchor in links:
            assert cited[anchor][0] == cell_id, (anchor, cell_id)
            label = label_of[cited[anchor][1]]
            if marker:
                assert f"({marker}) {label}" in named, (sec[:60], marker, label)
                marked += 1
            else:
                assert label in named and not re.search(r"\([a-z]\) " + re.escape(label), named), (sec[:60], label)
            # One text, one cell: the same id from two documents is told apart.
            assert seen.setdefault((cell_id, marker), anchor) == anchor, (sec[:60], cell_id)
    return marked


def test_links_to_cells_say_the_cell_id_and_each_section_names_its_sources_once(merged):
    _, md, page, _ = merged
    assert check_citations(md) > 0
    # A section measured on one document of a platform needs no marker.
    pyext = section(md, "A Python C extension in a terminal")
    assert "Measured on: linux (Python 3.11.2, ipykernel 6.17.1)." in pyext
    assert "[`linux/python-tty/check-signals/tty-intr`](#linux-system.python-tty.check-signals.tty-intr)" in pyext
    # The page: the same texts, keyed the same way.
    kernel = page.split('id="s-jupyter-posix-signal"')[1].split('<div class="situation"')[0]
    assert "Measured on: (a) linux (Python 3.11.7, ipykernel 7.4.0), (b) linux (Python 3.11.2, ipykernel 6.17.1)." in kernel
    links = HTML_CITE.findall(kernel)
    assert ("linux-system.jupyter.c-handler-import.kernel-interrupt",
            "linux/jupyter/c-handler-import/kernel-interrupt", "b") in links
    for anchor, cell_id, marker in HTML_CITE.findall(page):
        assert anchor.split(".", 1)[1].replace(".", "/") in cell_id.replace(".", "/").replace("+", "_").replace(":", "_")
    assert "[Python" not in md.split("## Choosing")[1].split("## Measured on")[0]


def test_anchors_are_the_file_stem_and_the_cell_id_and_never_repeat(sigprobe, tmp_path):
    """Two documents named alike in two folders, and two of one interpreter
    that only their file names tell apart."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(VENV, tmp_path / "a" / "linux-venv.json")
    shutil.copy(SYSTEM, tmp_path / "b" / "linux-venv.json")
    shutil.copy(VENV, tmp_path / "a" / "twin.json")
    docs = [tmp_path / "a" / "linux-venv.json", tmp_path / "b" / "linux-venv.json", tmp_path / "a" / "twin.json"]
    r = sigprobe("report", *map(str, docs), "--md", str(tmp_path / "a" / "README.md"),
                 "--html", str(tmp_path / "a" / "r.html"))
    assert r.returncode == 0, r.stderr
    md, page = (tmp_path / "a" / "README.md").read_text(), (tmp_path / "a" / "r.html").read_text()
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for anchor in ("linux-venv.tty.none.tty-intr", "linux-venv-2.tty.none.tty-intr", "twin.tty.none.tty-intr"):
        assert f'<a id="{anchor}"></a>' in md and f'<td id="{anchor}"' in page
    terminal = section(md, "A terminal program")
    assert ("Measured on: (a) linux (Python 3.11.7, ipykernel 7.4.0; linux-venv.json), "
            "(b) linux (Python 3.11.2, ipykernel 6.17.1), (c) linux (Python 3.11.7, ipykernel 7.4.0; twin.json).") in terminal
    assert ("[`linux/tty/none/tty-intr` (a)](#linux-venv.tty.none.tty-intr), [`linux/tty/none/tty-intr` (b)]"
            "(#linux-venv-2.tty.none.tty-intr), [`linux/tty/none/tty-intr` (c)](#twin.tty.none.tty-intr)") in terminal
    # "Generated by" names each file once, and beside it what the file holds.
    line = next(x for x in md.splitlines() if x.startswith("Generated by"))
    assert re.findall(r"\[`([^`]+)`\]\([^)]+\) \(([^)]*)\)", line) == [
        ("linux-venv.json", "linux, Python 3.11.7, ipykernel 7.4.0"),
        ("linux-venv.json", "linux, Python 3.11.2, ipykernel 6.17.1"),
        ("twin.json", "linux, Python 3.11.7, ipykernel 7.4.0")]
    generated = page.split("Generated by")[1].split("</p>")[0]
    assert generated.count("twin.json") == 1 and "(linux, Python 3.11.7, ipykernel 7.4.0)" in generated


# ---- report: the reference ------------------------------------------------------

def test_terminal_claims_are_computed_and_cite_their_cells(merged):
    _, md, _, _ = merged
    terminal = section(md, "A terminal program")
    works = terminal.split("- **Work**")[1].split("- **Fail**")[0]
    fails = terminal.split("- **Fail**")[1]
    assert ("Measured on: (a) linux (Python 3.11.7, ipykernel 7.4.0), (b) linux (Python 3.11.2, ipykernel 6.17.1)."
            in terminal)
    assert "`sigaction`" in works and "[`linux/tty/sigaction/tty-intr` (a)](#linux-venv.tty.sigaction.tty-intr)" in works
    assert "`none`: killed — the default action ended the process" in fails
    anchor = terminal.split("[`linux/tty/none/tty-intr` (b)](#")[1].split(")")[0]
    assert anchor == "linux-system.tty.none.tty-intr"
    assert f'| <a id="{anchor}"></a>`linux/tty/none/tty-intr` | linux-system.json | killed |' in md


def test_a_strategy_handled_in_one_environment_only_depends(merged):
    _, md, _, _ = merged
    kernel = section(md, "In a Jupyter kernel on Linux/macOS, interrupt_mode signal")
    depends = kernel.split("- **Depend")[1]
    assert depends.startswith(" on the delivery, host, interpreter or run")
    line = next(x for x in depends.splitlines() if "`c-handler-import`" in x)
    assert "handled: [`linux/jupyter/c-handler-import/kernel-interrupt` (b)](#linux-system." in line
    assert "deferred — the native work did not notice" in line and "` (a)](#linux-venv." in line
    assert "`check-signals` — median 150 µs: handled" in kernel.split("- **Work**")[1]


def test_flaky_cells_are_reported_with_their_rate(merged):
    _, md, _, _ = merged
    message = section(md, "In a Jupyter kernel on Linux/macOS, interrupt_mode message")
    assert "flaky — the runs disagree" in message and "handled 2/3, deferred 1/3" in message


def test_unmeasured_situations_say_how_to_measure(merged):
    _, md, _, _ = merged
    win_kernel = section(md, "In a Jupyter kernel on Windows, interrupt_mode signal")
    assert "**Not measured here.**" in win_kernel and "real Windows CI" in win_kernel
    nearest = win_kernel.split("Nearest measured:")[1]
    assert "`event`" in nearest and "windows-wine/jupyter-launch/event/set-event" in nearest
    message = section(md, "In a Jupyter kernel on Windows, interrupt_mode message")
    assert "**Not measured here.**" in message and "Nearest" not in message
    assert "--only 'macos/tty/*'" in section(md, "A terminal program")


def test_cells_that_could_not_run_are_not_judged(merged):
    _, md, _, _ = merged
    console = section(md, "A Windows console program")
    unjudged = console.split("**Could not be judged here**")[1]
    assert "error: delivery failed" in unjudged and "*Wine: GenerateConsoleCtrlEvent" in unjudged
    assert "`none`" not in console.split("**Could not be judged here**")[0]


def test_every_situation_of_the_rules_appears(merged):
    _, md, page, _ = merged
    for s in reference.SITUATIONS:
        assert f"### {s.title}\n" in md
        assert f'id="s-{s.key}"' in page


def test_the_rules_hold_no_verdict_for_a_strategy():
    """Situations select by platform, host and delivery only."""
    for s in reference.SITUATIONS:
        assert set(vars(s.cells)) == {"platforms", "hosts", "deliveries"}


def _committed(path: str) -> bytes:
    """A file as the last commit has it: what is committed, not what the user's
    own `sigprobe run` (which rewrites results/) left in the working tree."""
    r = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{path}"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_committed_reference_is_generated_from_the_committed_documents(sigprobe, tmp_path):
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", "HEAD", "results/"],
                           capture_output=True, text=True, check=True).stdout.split()
    docs = [n for n in names if n.endswith(".json")]
    assert docs, "results/ has committed documents"
    # Beside the output, so that the links to the documents read as in results/.
    for name in docs:
        (tmp_path / Path(name).name).write_bytes(_committed(name))
    r = sigprobe("report", *(str(tmp_path / Path(n).name) for n in docs),
                 "--md", str(tmp_path / "README.md"), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "README.md").read_bytes()
    assert md == _committed("results/README.md"), "run `scripts/sigprobe report` and commit results/"
    assert (tmp_path / "r.html").read_bytes() == _committed("results/reference.html")


# ---- compare --------------------------------------------------------------------

def test_compare_identical_documents_exits_0(sigprobe):
    r = sigprobe("compare", str(VENV), str(VENV))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 changed, 0 only in A, 0 only in B, 7 the same"


def test_compare_lists_changed_and_one_sided_cells_and_exits_1(sigprobe):
    r = sigprobe("compare", str(VENV), str(SYSTEM))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert "changed  linux/jupyter/c-handler-import/kernel-interrupt: deferred -> handled" in lines
    assert "only A   linux/jupyter-message/check-signals/kernel-interrupt: flaky (handled 2/3, deferred 1/3)" in lines
    assert "only B   linux/python-tty/check-signals/tty-intr: handled" in lines
    assert lines[-1] == "1 changed, 1 only in A, 1 only in B, 5 the same"


def test_compare_json(sigprobe):
    r = sigprobe("compare", str(VENV), str(SYSTEM), "--json")
    assert r.returncode == 1, r.stderr
    diff = json.loads(r.stdout)
    assert diff["key"] == "id"
    assert [(c["key"], c["a"]["verdict"], c["b"]["verdict"]) for c in diff["changed"]] == [
        ("linux/jupyter/c-handler-import/kernel-interrupt", "deferred", "handled")]
    assert [c["id"] for c in diff["only_a"]] == ["linux/jupyter-message/check-signals/kernel-interrupt"]
    assert [c["id"] for c in diff["only_b"]] == ["linux/python-tty/check-signals/tty-intr"]
    assert diff["same"] == 5


def test_compare_across_platforms_ignoring_the_prefix(sigprobe):
    r = sigprobe("compare", str(WINE), str(WINDOWS))
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == "0 changed, 5 only in A, 5 only in B, 0 the same"
    r = sigprobe("compare", str(WINE), str(WINDOWS), "--ignore-platform", "--json")
    assert r.returncode == 1, r.stderr
    diff = json.loads(r.stdout)
    assert diff["key"] == "host/strategy/delivery"
    assert [(c["key"], c["a"]["verdict"], c["b"]["verdict"]) for c in diff["changed"]] == [
        ("console/none/ctrl-break", "error", "killed")]
    assert diff["same"] == 4 and not diff["only_a"] and not diff["only_b"]


def test_flaky_cells_differ_only_when_a_verdicts_share_differs_beyond_chance():
    a = {"verdict": "flaky", "counts": {"handled": 2, "deferred": 1}}
    assert not compare.differs(a, {"verdict": "flaky", "counts": {"handled": 1, "deferred": 2}})
    # an outcome seen once in a few runs and not in the others is chance
    assert not compare.differs(a, {"verdict": "flaky", "counts": {"handled": 2, "hung": 1}})
    assert not compare.differs({"verdict": "flaky", "counts": {"lost": 11, "deferred": 5, "hung": 4}},
                               {"verdict": "flaky", "counts": {"lost": 14, "deferred": 6}})
    # a split that moved, or an outcome that came in half the runs, is a change
    assert compare.differs({"verdict": "flaky", "counts": {"handled": 18, "deferred": 2}},
                           {"verdict": "flaky", "counts": {"handled": 3, "deferred": 17}})
    assert compare.differs({"verdict": "flaky", "counts": {"handled": 19, "deferred": 1}},
                           {"verdict": "flaky", "counts": {"handled": 10, "deferred": 1, "hung": 9}})
    assert compare.differs(a, {"verdict": "handled", "counts": {"handled": 3}})


@pytest.mark.parametrize("k1,n1,k2,n2,p", [
    (1, 3, 0, 3, 1.0), (4, 20, 0, 20, 0.1060), (9, 20, 0, 20, 0.001229), (3, 10, 7, 10, 0.1789),
    (18, 20, 3, 20, 3.358e-6), (0, 0, 2, 3, 1.0)])
def test_fisher_exact_matches_the_published_values(k1, n1, k2, n2, p):
    # two-sided values as scipy.stats.fisher_exact([[k1, n1-k1], [k2, n2-k2]]) gives them; (3, 10, 7, 10) is the
    # textbook 0.1789
    assert compare.fisher_exact(k1, n1, k2, n2) == pytest.approx(p, rel=1e-2, abs=1e-9)


# ---- broken inputs ----------------------------------------------------------------

@pytest.mark.parametrize("name", BROKEN)
def test_report_broken_input_is_one_line_naming_the_file(sigprobe, tmp_path, name):
    r = sigprobe("report", str(VENV), str(FIX / name), "--md", str(tmp_path / "x.md"))
    one_error_line(r, name)
    assert not (tmp_path / "x.md").exists()


@pytest.mark.parametrize("name", BROKEN)
def test_compare_broken_input_exits_2(sigprobe, name):
    one_error_line(sigprobe("compare", str(FIX / name), str(VENV)), name)
    one_error_line(sigprobe("compare", str(VENV), str(FIX / name), "--json"), name)


def test_missing_file_and_bad_cell_id(sigprobe, tmp_path):
    one_error_line(sigprobe("compare", str(VENV), str(tmp_path / "nope.json")), "nope.json")
    doc = json.loads(VENV.read_text())
    doc["cells"][0]["id"] = "linux/tty/none"
    (tmp_path / "bad-id.json").write_text(json.dumps(doc))
    line = one_error_line(sigprobe("report", str(tmp_path / "bad-id.json"), "--md", "-"), "bad-id.json")
    assert "platform/host/strategy/delivery" in line


def test_compare_needs_two_documents(sigprobe):
    line = one_error_line(sigprobe("compare", str(VENV)), "compare")
    assert "B.json" in line


# ---- the page in a real browser -------------------------------------------------

def chromium(*args, tmp_path: Path) -> subprocess.CompletedProcess:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: install it with: apt-get install -y chromium "
                    "(`scripts/sigprobe test` does this as root)")
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", *args]
    # Its own session, so that a hung browser and its helpers go down together, by our pid only.
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("chromium did not finish within 120 s")
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


class MatrixParser(HTMLParser):
    """Collects each matrix: its source, column keys and strategy rows."""

    def __init__(self):
        super().__init__()
        self.tables, self.in_head = [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "matrix" in (a.get("class") or "").split():
            self.tables.append({"source": a.get("data-source"), "columns": [], "rows": [], "verdicts": []})
        elif not self.tables:
            return
        elif tag == "thead":
            self.in_head = True
        elif tag == "tbody":
            self.in_head = False
        elif tag == "th" and self.in_head and a.get("data-col"):
            self.tables[-1]["columns"].append(a["data-col"])
        elif tag == "tr" and a.get("data-strategy"):
            self.tables[-1]["rows"].append(a["data-strategy"])
        elif tag == "td" and a.get("data-verdict"):
            self.tables[-1]["verdicts"].append(a["data-verdict"])


def test_chromium_renders_the_matrix(merged, tmp_path):
    _, _, _, page = merged
    r = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    parser = MatrixParser()
    parser.feed(r.stdout)
    tables = {(t["source"], tuple(t["columns"])): t for t in parser.tables}
    venv = "linux-venv"
    native = tables[(venv, ("tty/tty-intr", "no-tty/kill", "no-tty/sigterm"))]
    assert native["rows"] == ["none", "sigaction"]
    assert native["verdicts"] == ["killed", "handled", "handled", "killed"]  # `none` has no no-tty cells
    kernels = tables[(venv, ("jupyter/kernel-interrupt", "jupyter-message/kernel-interrupt"))]
    assert kernels["rows"] == ["check-signals", "c-handler-import"]
    assert "flaky" in kernels["verdicts"]
    wine = tables[("windows-wine", ("console/ctrl-c", "console/ctrl-break", "no-window/set-event",
                                    "jupyter-launch/set-event"))]
    assert wine["rows"] == ["console-ctrl", "none", "event"]
    assert [t["source"] for t in parser.tables].count("linux-system") == 2


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decodes an 8-bit RGB/RGBA PNG (what Chromium writes): width, height and
    every pixel's RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_chromium_screenshot_is_not_blank(merged, tmp_path):
    _, _, _, page = merged
    shot = tmp_path / "page.png"
    r = chromium(f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri(), tmp_path=tmp_path)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    assert len(set(pixels)) >= 5


# What the phone test measures, written by the test's own copy of the page
# (the page itself has no script): the widths of the viewport, of the whole
# page and of the glance table's box, and where the table's first column sits
# before and after the box is scrolled sideways.
PROBE = """<script>(function () {
  var box = document.querySelector("table.glance").parentElement;
  var head = document.querySelector("table.glance tbody th");
  function left() { return head.getBoundingClientRect().left - box.getBoundingClientRect().left; }
  var before = left();
  box.scrollLeft = 300;
  var out = {viewport: window.innerWidth, page: document.documentElement.scrollWidth,
             box: box.clientWidth, boxRight: box.getBoundingClientRect().right, table: box.scrollWidth,
             scrolled: box.scrollLeft, before: before, after: left()};
  var pre = parent.document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();</script>"""
PHONE_WIDTH = 390


def test_chromium_at_phone_width_scrolls_the_glance_table_inside_its_box(merged, tmp_path):
    _, _, page, _ = merged
    # Headless Chromium will not lay a window out narrower than 500 px, so the
    # page is shown in a frame of a phone's width: that is its viewport.
    probed = page.replace("</body>", PROBE + "</body>")
    frame = tmp_path / "phone.html"
    frame.write_text(f'<!DOCTYPE html><html><body><iframe width="{PHONE_WIDTH}" height="844" '
                     f'srcdoc="{html.escape(probed, quote=True)}"></iframe></body></html>')
    r = chromium("--dump-dom", frame.as_uri(), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(html.unescape(re.search(r'<pre id="probe">([^<]*)</pre>', r.stdout)[1]))
    assert m["viewport"] == PHONE_WIDTH, m
    # Nothing makes the page wider than the phone: the page itself never scrolls sideways.
    assert m["page"] <= m["viewport"], m
    # The table is wider than the screen and scrolls inside its own box...
    assert m["boxRight"] <= m["viewport"] and m["table"] > m["box"] and m["scrolled"] > 0, m
    # ...while the situations' column stays in view.
    assert abs(m["after"] - m["before"]) <= 1, m


def _cell(host, strategy, delivery, verdict, median_us=None):
    c = {"id": f"linux/{host}/{strategy}/{delivery}", "host": host, "strategy": strategy, "delivery": delivery,
         "verdict": verdict, "counts": {verdict: 3}, "runs": []}
    if median_us is not None:
        c["latency_us"] = {"min": median_us, "median": median_us, "max": median_us}
    return c


def test_the_recommended_header_is_checked_against_the_best_strategy_with_why_it_misses(tmp_path):
    """Each host/delivery with a handled cell: `recommended` meets its goal
    (handled, within 2x of the best median) or says why not; a situation where
    nothing is handled sets no goal."""
    doc = json.loads((FIX / "linux-venv.json").read_text())
    doc["cells"] = [
        _cell("python-no-tty", "self-pipe", "kill", "handled", 80),
        _cell("python-no-tty", "recommended", "kill", "handled", 150),      # 1.9x: met
        _cell("python-no-tty", "recommended+nogil", "kill", "handled", 900),  # 11x: missed
        _cell("python-background", "c-handler-per-call", "kill", "handled", 90),
        _cell("python-background", "recommended", "kill", "ignored"),
        _cell("jupyter-message", "self-pipe+nogil", "kernel-interrupt", "handled", 7000),
        _cell("jupyter-message", "recommended", "kernel-interrupt", "handled", 19000),  # 2.7x: missed
        _cell("jupyter-child", "none", "kernel-interrupt", "killed"),
        _cell("jupyter-child", "recommended", "kernel-interrupt", "lost"),  # nothing handled: no goal
    ]
    path = tmp_path / "linux.json"
    path.write_text(json.dumps(doc))
    sources = report.load_sources([path])
    checks = {(c.host, c.delivery): c for c in reference.recommended_checks(sources)}
    assert set(checks) == {("python-no-tty", "kill"), ("python-background", "kill"),
                           ("jupyter-message", "kernel-interrupt")}
    rows = {(h, r[0]): r for (h, _), c in checks.items() for r in c.rows}
    assert checks[("python-no-tty", "kill")].best[0] == "self-pipe"
    assert rows[("python-no-tty", "recommended")][4] is True and rows[("python-no-tty", "recommended")][5] == ""
    assert rows[("python-no-tty", "recommended+nogil")][4] is False
    assert "no-GIL variant" in rows[("python-no-tty", "recommended+nogil")][5]
    assert "SIG_IGN" not in rows[("python-background", "recommended")][5]
    assert "ignored from exec" in rows[("python-background", "recommended")][5]
    assert "switch interval" in rows[("jupyter-message", "recommended")][5]
    md = report.markdown(sources, tmp_path)
    section = md.split("### `recommended`", 1)[1].split("\n## ", 1)[0]
    assert "| `python-no-tty` / `kill` | [`self-pipe` 80 µs](#linux.python-no-tty.self-pipe.kill) | " \
           "[✓ 150 µs (1.9×)](#linux.python-no-tty.recommended.kill) | [✗ 900 µs (11.2×)]" in section
    assert "[✗ ignored](#linux.python-background.recommended.kill)" in section
    assert "jupyter-child" not in section
    html = report.html_page(sources)
    assert 'id="recommended"' in html and "✗ 19.0 ms (2.7×)" in html


def test_the_interruptible_calls_table_names_its_sources_once_and_its_columns_by_marker(tmp_path):
    """Two documents of one platform with subject cells: the columns say
    which by marker, (a) and (b), and the intro names each source once; the
    long label (interpreter, ipykernel, file) is in no column heading."""
    paths = []
    for fixture in (VENV, SYSTEM):
        doc = json.loads(fixture.read_text())
        doc["cells"] = [_cell("python-no-tty", "code:time.sleep", "kill", "handled", 300),
                        _cell("jupyter", "code:time.sleep", "kernel-interrupt", "handled", 900)]
        paths.append(tmp_path / fixture.name)
        paths[-1].write_text(json.dumps(doc))
    sources = report.load_sources(paths)
    md = report.markdown(sources, tmp_path)
    section = md.split("## Is this call interruptible?\n")[1].split("\n## ")[0]
    lines = section.strip().splitlines()
    intro, head = lines[0], next(line for line in lines if line.startswith("| call |"))
    assert intro.endswith(f"Measured on: (a) {sources[0].label}, (b) {sources[1].label}.")
    assert head == ("| call | no terminal, kill (a) | Jupyter, signal mode (a) | no terminal, kill (b) | "
                    "Jupyter, signal mode (b) |")
    html = report.html_page(sources)
    head = html.split('id="subjects"')[1].split("<thead>")[1].split("</thead>")[0]
    assert "<th>no terminal, kill (b)</th>" in head and "Python" not in head


def test_sources_that_differ_only_by_the_interpreters_folder_are_labelled_by_file_name(tmp_path):
    """Two documents of one platform measured with copies of one interpreter
    in two folders: the label is the file name, not a path."""
    from sigprobe.export.report import Source, _label
    machine = {"python": "3.11.9", "ipykernel": "7.4.0"}
    a = Source(tmp_path / "windows-wine.json", {"platform": "windows-wine", "cells": [],
                                                 "machine": {**machine, "python_executable": "Z:\\a\\python.exe"}})
    b = Source(tmp_path / "windows-wine-subjects.json",
               {"platform": "windows-wine", "cells": [], "machine": {**machine, "python_executable": "Z:\\b\\python.exe"}})
    _label([a, b])
    assert (a.label, b.label) == ("windows-wine (windows-wine.json)", "windows-wine (windows-wine-subjects.json)")
    c = Source(tmp_path / "other.json", {"platform": "windows-wine", "cells": [],
                                          "machine": {**machine, "pyzmq": "26", "python_executable": "Z:\\a\\python.exe"}})
    _label([a, c])
    assert c.label == "windows-wine (pyzmq 26)"
