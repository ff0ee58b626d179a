"""`sigprobe check` on code whose answer is known by construction
(tests/py/fixtures/check/check_fixture.c, built here for this interpreter):
a loop that polls PyErr_CheckSignals() is handled everywhere its SIGINT gets
to Python; one that spins holding the GIL is deferred; one that relies on the
C handler its import installed is handled in a plain interpreter and deferred
in a kernel, with the owner of SIGINT shown changing to Python's; code that
swallows KeyboardInterrupt is hung, ended within its deadline, with nothing
left running. And bad input: one line, exit 2."""
import json
import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sigprobe.results import document

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "check" / "check_fixture.c"
ALL_HOSTS = ["python-tty", "python-no-tty", "jupyter", "jupyter-message"]


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory):
    """check_fixture and check_fixture_handler, built for this interpreter."""
    d = tmp_path_factory.mktemp("check-ext")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name, extra in (("check_fixture", []), ("check_fixture_handler", ["-DHANDLER_AT_IMPORT"])):
        r = subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-O2",
                            *extra, "-isystem", sysconfig.get_paths()["include"], "-fPIC", "-shared", str(FIXTURE),
                            "-o", str(d / f"{name}{suffix}")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return d


def check(cwd, *args, timeout=180):
    """`sigprobe check ... --json` run from cwd (where the fixture modules are)."""
    r = subprocess.run([sys.executable, "-m", "sigprobe", "check", *args], capture_output=True, text=True,
                       cwd=cwd, stdin=subprocess.DEVNULL, timeout=timeout)
    return r


def doc_of(r) -> dict:
    assert r.stdout.startswith("{"), (r.returncode, r.stderr[-2000:])
    return json.loads(r.stdout)


def by_host(doc) -> dict:
    return {c["host"]: c for c in doc["cells"]}


def test_a_loop_that_checks_for_signals_is_interruptible(ext_dir, tmp_path):
    out = tmp_path / "poll.json"
    r = check(ext_dir, "--setup", "import check_fixture as f", "-c", "f.poll(2000)", "--name", "poll",
              "--after", "300", "--json", "--out", str(out))
    doc = doc_of(r)
    cells = by_host(doc)
    assert list(cells) == ALL_HOSTS
    assert [c["id"] for c in doc["cells"]][0] == "linux/python-tty/code:poll/tty-intr"
    for host in ("python-tty", "python-no-tty", "jupyter"):
        assert cells[host]["verdict"] == "handled", (host, cells[host])
        run = cells[host]["runs"][0]
        assert run["fired"][0]["handler"] == "KeyboardInterrupt"
        assert 0 < run["check"]["ki_latency_ms"] < 500, run["check"]  # the loop checks every millisecond
        assert run["check"]["raised_at"]["file"] == "<sigprobe check -c>"
    # Message mode: the control thread needs the GIL the loop never lets go of.
    msg = cells["jupyter-message"]
    assert msg["verdict"] == "deferred", msg
    assert msg["runs"][0]["check"]["gil_held_ms"] > 1500
    assert "control thread" in msg["conclusion"] and "GIL" in msg["conclusion"]
    assert r.returncode == 1  # not every host handled it
    # The document is a results document: report and compare read it unchanged.
    assert document.load(out)["subject"]["name"] == "poll"
    rep = subprocess.run([sys.executable, "-m", "sigprobe", "report", str(out), "--md", "-"], capture_output=True,
                         text=True)
    assert rep.returncode == 0, rep.stderr
    assert "code:poll" in rep.stdout
    cmp = subprocess.run([sys.executable, "-m", "sigprobe", "compare", str(out), str(out)], capture_output=True,
                         text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_a_native_spin_holding_the_gil_is_deferred_and_the_hold_measured(ext_dir):
    r = check(ext_dir, "--setup", "import check_fixture as f", "-c", "f.spin(1500)", "--after", "300",
              "--host", "python-no-tty", "--host", "jupyter", "--json")
    cells = by_host(doc_of(r))
    for host in ("python-no-tty", "jupyter"):
        c = cells[host]
        assert c["verdict"] == "deferred", (host, c)
        facts = c["runs"][0]["check"]
        # The watchdog saw no Python thread run for about the whole spin.
        assert 1300 <= facts["gil_held_ms"] <= 2500, facts
        assert facts["ki_latency_ms"] >= 900, facts  # it came when the spin ended, ~1200 ms after the interrupt
        assert "held the GIL" in c["conclusion"]
    assert r.returncode == 1


def test_a_native_call_that_ran_to_its_end_is_deferred_even_when_shorter_than_uninterrupted(ext_dir, tmp_path):
    """The uninterrupted run spins 1500 ms, the interrupted one 600 ms (a
    count in a file tells them apart), in an operator (a numpy matmul's
    slot) as the code's last statement: its KeyboardInterrupt comes at
    600 ms, sooner than any time criterion would call deferred, but with no
    frame of the code left (raised once the code had returned), so deferred.
    A matmul whose time varies threefold with what shares the cores is that
    case. (After a call, CPython checks for signals in the caller's frame, so
    there the time criterion is all there is.)"""
    count = tmp_path / "runs"
    count.write_text("0")
    # Counted in the setup, which runs before the code's start: the interrupted run begins only after
    # the uninterrupted one's code has started, so after its count.
    setup = (f"import check_fixture as f\nn = int(open({str(count)!r}).read())\n"
             f"open({str(count)!r}, 'w').write(str(n + 1))\ns = f.Spin(1500 if n == 0 else 600)")
    r = check(ext_dir, "--setup", setup, "-c", "s @ None", "--after", "300",
              "--host", "python-no-tty", "--json")
    doc = doc_of(r)
    assert count.read_text() == "2"  # the uninterrupted run, then the interrupted one
    assert 1400 <= doc["subject"]["uninterrupted_ms"] <= 2500, doc["subject"]
    (cell,) = doc["cells"]
    assert cell["verdict"] == "deferred", cell
    run = cell["runs"][0]
    assert run["check"]["ended_at_ms"] < 0.8 * doc["subject"]["uninterrupted_ms"], run["check"]
    assert "(the code had returned)" in run["reason"], run


def test_an_import_time_c_handler_works_in_a_plain_interpreter_not_in_a_kernel(ext_dir):
    r = check(ext_dir, "--setup", "import check_fixture_handler as f", "-c", "f.handler_loop(2000)",
              "--after", "300", "--host", "python-no-tty", "--host", "python-tty", "--host", "jupyter", "--json")
    cells = by_host(doc_of(r))
    so = "check_fixture_handler" + sysconfig.get_config_var("EXT_SUFFIX")
    for host in ("python-no-tty", "python-tty"):
        assert cells[host]["verdict"] == "handled", (host, cells[host])
        owner = cells[host]["runs"][0]["check"]["sigint_owner"]
        assert owner["during"][0] == so, owner  # the extension's handler owned SIGINT while the code ran
    k = cells["jupyter"]
    assert k["verdict"] == "deferred", k
    owner = k["runs"][0]["check"]["sigint_owner"]
    # The import (its own cell) installed it; ipykernel put Python's back before the code's cell.
    assert owner["after_setup"][0] == so and owner["before"][0] == "python" and owner["during"][0] == "python"
    assert "replaced by Python's" in k["conclusion"]


def test_code_that_swallows_keyboardinterrupt_is_hung_and_ended(tmp_path):
    marker = f"sigprobe-check-hung-{os.getpid()}"
    code = (f"import time\nMARK = {marker!r}\nwhile True:\n    try:\n        time.sleep(0.01)\n"
            "    except KeyboardInterrupt:\n        pass\n")
    r = check(tmp_path, "-c", code, "--after", "200", "--timeout", "2", "--host", "python-no-tty",
              "--host", "jupyter", "--json", timeout=120)
    cells = by_host(doc_of(r))
    for host in ("python-no-tty", "jupyter"):
        assert cells[host]["verdict"] == "hung", (host, cells[host])
        assert "sigprobe ended it" in cells[host]["runs"][0]["reason"]
    assert r.returncode == 1
    # Nothing left running: no interpreter or kernel still has the code.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_a_check_started_with_sigint_ignored_measures_the_code_as_a_shell_starts_it(tmp_path):
    """sigprobe run as a background job of a script (or under nohup) inherits
    SIGINT ignored; the code it checks is started as a shell starts a
    program, with Python's own handler (sigprobe's own SIGINT handler is reset
    to the default in its children, where an ignored SIGINT would stay
    ignored): a plain loop is still handled."""
    code = "import time\nt0 = time.monotonic()\nwhile time.monotonic() - t0 < 3:\n    pass\n"
    r = subprocess.run([sys.executable, "-m", "sigprobe", "check", "-c", code, "--after", "200",
                        "--host", "python-no-tty", "--host", "python-tty", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    cells = by_host(doc_of(r))
    for host in ("python-no-tty", "python-tty"):
        assert cells[host]["verdict"] == "handled", (host, cells[host])
    assert r.returncode == 0


@pytest.mark.parametrize("args,message", [
    (["-c", "x = ("], "the code cannot run: SyntaxError"),
    (["--script", "/nonexistent/script.py"], "--script /nonexistent/script.py: no such file"),
    (["--call", "no_such_module_here:fit"], "the setup failed: ModuleNotFoundError"),
    (["--call", "fit"], "expected MODULE:FUNCTION"),
    (["-c", "pass", "--after", "0"], "--after"),
    (["-c", "pass", "--after", "5000", "--timeout", "2"], "is not shorter than --timeout"),
    (["-c", "pass", "--host", "nowhere"], "invalid choice"),
    (["-c", "pass", "--host", "console"], "--host console: a Windows host (Ctrl+C on the code's own console), "
                                          "run with --platform windows-wine"),
    (["-c", "pass", "--python", "/nonexistent/python"], "not an executable file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = check(tmp_path, *args, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and message in lines[-1] and lines[-1].startswith("sigprobe: "), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("code,why", [
    ("import sys; sys.exit(3)", "before the interrupt"),
    ("import os; os.abort()", "killed by SIGABRT"),
])
def test_code_that_ends_before_the_interrupt_is_an_error_verdict(tmp_path, code, why):
    r = check(tmp_path, "-c", code, "--host", "python-no-tty", "--host", "jupyter", "--json", timeout=120)
    cells = by_host(doc_of(r))
    for host, c in cells.items():
        assert c["verdict"] == "error", (host, c)
        assert r.returncode == 1
    assert why in cells["python-no-tty"]["runs"][0]["reason"], cells["python-no-tty"]


# ---- %%sigprobe check, in a real kernel -------------------------------------------

@pytest.fixture(scope="module", params=["signal", "message"])
def magic_kernel(request, tmp_path_factory, ext_dir):
    """A kernel of that interrupt mode, with the fixture modules importable and sigprobe's magic loaded."""
    from helpers import Kernel
    k = Kernel(tmp_path_factory.mktemp("check-magic"), interrupt_mode=request.param)
    try:
        # As a user's notebook next to their module: the kernel imports from its working directory.
        content, out = k.execute(f"import os; os.chdir({str(ext_dir)!r})\n"
                                 "import check_fixture as f\n%load_ext sigprobe")
        assert content["status"] == "ok", (content, out)
        k.mode = request.param
        yield k
    finally:
        k.shutdown()


def magic_check(kernel, body, flags=""):
    content, out = kernel.execute(f"%%sigprobe check --json --mode {kernel.mode} --after 300 {flags}\n{body}",
                                  timeout=120)
    assert content["status"] == "ok", (content, out)
    return json.loads(out)


def test_the_magic_measures_the_cell_in_its_own_kernel(magic_kernel):
    poll = magic_check(magic_kernel, "f.poll(1500)")
    spin = magic_check(magic_kernel, "f.spin(1500)")
    (pc,), (sc,) = poll["cells"], spin["cells"]
    assert pc["host"] == ("jupyter" if magic_kernel.mode == "signal" else "jupyter-message")
    # Signal mode: SIGINT reaches the polling loop; message mode needs the GIL the loop holds.
    assert pc["verdict"] == ("handled" if magic_kernel.mode == "signal" else "deferred"), pc
    assert sc["verdict"] == "deferred", sc
    assert sc["runs"][0]["check"]["gil_held_ms"] > 1000
    for doc in (poll, spin):
        assert doc["kernel_state"] == {"unchanged": True}
    # Nothing leaked: the next cell runs to its end, its SIGINT handling as before.
    content, out = magic_kernel.execute("import time, signal\ntime.sleep(0.5)\n"
                                        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    assert content["status"] == "ok" and out.strip() == "True", (content, out)


def test_the_magic_line_form_and_its_errors(magic_kernel):
    content, out = magic_kernel.execute(f"%sigprobe check --json --mode {magic_kernel.mode} --after 200 f.poll(800)",
                                        timeout=120)
    assert content["status"] == "ok", (content, out)
    assert json.loads(out)["subject"]["code"] == "f.poll(800)"
    content, out = magic_kernel.execute("%sigprobe check --after 200 x = (")
    assert content["status"] == "error" and "the code cannot run: SyntaxError" in content["evalue"], content
    content, out = magic_kernel.execute("%sigprobe check --bogus 1 f.poll(10)")
    assert content["status"] == "error" and "--bogus" in content["evalue"], content


@pytest.mark.parametrize("line, code", [
    ("--json --after 300 __import__('time').sleep(2)", "__import__('time').sleep(2)"),  # quotes kept
    ('--repeat 2 f(1, "a  b")', 'f(1, "a  b")'),  # and the spaces inside them
    ("--out 'my file.json' f()", "f()"),
    ("--json", ""),
])
def test_the_line_forms_code_is_the_line_as_typed_after_the_options(line, code):
    from sigprobe.ipython import check_magic
    assert check_magic.parse(line, None)[1] == code


def test_options_after_the_lines_code_are_one_clear_line():
    from sigprobe.ipython import check_magic
    with pytest.raises(check_magic.UsageProblem, match=r"^%sigprobe check: the options go before the expression"):
        check_magic.parse("f() --json", None)


@pytest.mark.parametrize("gil_ms, says", [
    (31.0, "it does not end a wait the main thread is in"),  # a watchdog wake-up missed under load
    (2000.0, "and it needs the GIL, which the main thread held for 2000 ms"),
])
def test_the_gil_is_the_reason_only_when_held_for_most_of_the_wait(gil_ms, says):
    from sigprobe.check.verdict import conclusion
    run = {"verdict": "deferred", "check": {"gil_held_ms": gil_ms, "ki_latency_ms": 1700.0}}
    cell = {"id": "windows-wine/jupyter/code:x/kernel-interrupt", "verdict": "deferred", "runs": [run]}
    assert says in conclusion("jupyter", cell)


# ---- the calls everyone uses, in the matrix ----------------------------------------

def test_subjects_are_a_named_selection_of_the_matrix_not_the_default(sigprobe):
    everything = sigprobe("list").stdout.split()
    subjects = sigprobe("list", "--only", "subjects").stdout.split()
    assert not [c for c in everything if "/code:" in c]
    assert len(subjects) == 44 and all("/code:" in c for c in subjects)
    assert "linux/jupyter-message/code:numpy.matmul/kernel-interrupt" in subjects
    # A glob reaches them only when it says code: (a document's recorded
    # `--only 'linux/jupyter*'` means the probes' cells, as it did before subjects).
    probes = sigprobe("list", "--only", "linux/jupyter*").stdout.split()
    assert probes and not [c for c in probes if "/code:" in c]
    in_kernels = sigprobe("list", "--only", "linux/jupyter/code:*").stdout.split()
    assert in_kernels == [c for c in subjects if c.startswith("linux/jupyter/")] and in_kernels


def test_subject_cells_run_and_make_the_references_section(sigprobe, tmp_path):
    out = tmp_path / "subjects.json"
    r = sigprobe("run", "--repeat", "1", "--quiet", "--out", str(out),
                 "--only", "linux/python-no-tty/code:time.sleep/kill",
                 "--only", "linux/jupyter-message/code:ctypes.PyDLL/kernel-interrupt", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cells = {c["id"]: c for c in json.loads(out.read_text())["cells"]}
    assert cells["linux/python-no-tty/code:time.sleep/kill"]["verdict"] == "handled"
    # libc sleep() through PyDLL holds the GIL: message mode's control thread cannot pass the interrupt on.
    assert cells["linux/jupyter-message/code:ctypes.PyDLL/kernel-interrupt"]["verdict"] == "deferred"
    md = sigprobe("report", str(out), "--md", "-").stdout
    section = md.split("## Is this call interruptible?")[1].split("\n## ")[0]
    assert "| time.sleep() | " in section and "[handled" in section
    assert "[deferred](#subjects.jupyter-message.code_ctypes.PyDLL.kernel-interrupt)" in section  # file stem + cell


def test_an_interpreter_without_jupyter_makes_the_kernel_hosts_unsupported(tmp_path):
    """--python names the user's interpreter; one without ipykernel still gets
    its plain-interpreter answers, and the kernel hosts say what to install."""
    import venv
    venv.EnvBuilder(with_pip=False).create(tmp_path / "bare")
    bare = tmp_path / "bare" / "bin" / "python"
    r = check(tmp_path, "-c", "import time; time.sleep(1)", "--after", "200", "--python", str(bare),
              "--host", "python-no-tty", "--host", "jupyter", "--json", timeout=120)
    cells = by_host(doc_of(r))
    assert cells["python-no-tty"]["verdict"] == "handled", cells["python-no-tty"]
    k = cells["jupyter"]
    assert k["verdict"] == "unsupported" and "-m pip install ipykernel jupyter_client" in k["runs"][0]["reason"], k


# ---- the cysignals subject: Python >= 3.12 only ------------------------------

@pytest.fixture(scope="module")
def cysignals_python():
    """.venv-cysignals/bin/python (CPython 3.12 with cysignals and Cython), made
    as `scripts/sigprobe test` makes it (a stat when it is already there)."""
    from sigprobe import bootstrap
    py = bootstrap.ensure_cysignals_venv()
    if py is None:
        pytest.skip("no CPython 3.12 on this machine (pyenv's or python3.12 on PATH): cysignals requires "
                    "Python >= 3.12")
    return str(py)


def test_the_cysignals_subject_is_listed(sigprobe):
    cells = sigprobe("list", "--only", "linux/*/code:cysignals/*").stdout.split()
    assert cells == ["linux/python-tty/code:cysignals/tty-intr", "linux/python-no-tty/code:cysignals/kill",
                     "linux/jupyter/code:cysignals/kernel-interrupt",
                     "linux/jupyter-message/code:cysignals/kernel-interrupt"]


def test_the_cysignals_subject_is_unsupported_under_python_3_11(sigprobe, tmp_path):
    """The project's interpreter (3.11) cannot have cysignals: every cell says
    so, none is an error or missing; `check --subject` says it in one line."""
    assert sys.version_info[:2] < (3, 12), "this test needs the project's 3.11 venv"
    out = tmp_path / "cysignals.json"
    r = sigprobe("run", "--repeat", "1", "--quiet", "--out", str(out), "--only", "linux/*/code:cysignals/*")
    assert r.returncode == 0, r.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    assert len(cells) == 4
    for c in cells:
        assert c["verdict"] == "unsupported", c
        assert "cysignals needs Python >= 3.12" in c["runs"][0]["reason"], c
        assert f"Python {sys.version.split()[0]}" in c["runs"][0]["reason"], c
    r = check(tmp_path, "--subject", "cysignals")
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout[-500:])
    assert r.stderr.count("\n") == 1 and "cysignals needs Python >= 3.12" in r.stderr, r.stderr


def test_the_cysignals_subject_is_handled_without_a_terminal_under_python_3_12(sigprobe, cysignals_python, tmp_path):
    """Under 3.12 with cysignals the extension is built for it and measured:
    SIGINT by kill reaches cysignals' handler inside sig_on(), and the
    KeyboardInterrupt comes out of the loop in cysignals_spin.pyx."""
    out = tmp_path / "cysignals.json"
    r = sigprobe("run", "--repeat", "1", "--quiet", "--out", str(out), "--python", cysignals_python,
                 "--only", "linux/python-no-tty/code:cysignals/kill")
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["machine"]["python"].startswith("3.12."), doc["machine"]
    [cell] = doc["cells"]
    assert cell["verdict"] == "handled", cell
    run = cell["runs"][0]
    assert run["fired"][0]["handler"] == "KeyboardInterrupt", run
    assert run["check"]["raised_at"]["file"].endswith("cysignals_spin.pyx"), run["check"]


def test_the_matmul_subject_is_sized_for_this_machine():
    """One product of about a second here, whatever the machine (a fixed size
    took 0.1 s on one and 14 s on another); an interpreter that cannot time it
    makes the subject unavailable, saying why."""
    import re
    import time

    from sigprobe.check import cysignals_ext, subjects
    setup = subjects.matmul_setup(sys.executable)
    n = int(re.fullmatch(r"import numpy\na = numpy\.random\.default_rng\(1\)\.random\(\((\d+), \1\)\)", setup)[1])
    assert subjects.MATMUL_MIN <= n <= subjects.MATMUL_MAX
    ns: dict = {}
    exec(setup, ns)
    t0 = time.perf_counter()
    ns["a"] @ ns["a"]
    took = time.perf_counter() - t0
    assert 0.1 < took < 10, (n, took)  # about MATMUL_MS: sized and run while the suite shares the cores
    with pytest.raises(cysignals_ext.Unavailable, match="numpy's matmul could not be timed with /bin/false"):
        subjects.matmul_setup("/bin/false")


def test_busy_runs_share_their_lanes_and_waiting_ones_go_beside_them():
    """in_lanes: the busy items one lane at a time here, the eight waiting
    ones all at once beside them (each waits for the other seven: fewer
    lanes would break the barrier), the results in the items' order."""
    import threading
    import time

    from helpers import AtOnce
    from sigprobe.check.matrix import in_lanes
    busy, together = AtOnce(), threading.Barrier(8, timeout=30)

    def run(item):
        if item % 3:
            together.wait()
        else:
            with busy:
                time.sleep(0.05)
        return item * 10

    assert in_lanes(list(range(12)), lambda i: i % 3 == 0, run, 1, 8) == [i * 10 for i in range(12)]
    assert busy.most == 1


def test_the_output_drain_reads_a_descriptor_of_its_own():
    """What the code prints is drained by a thread from a duplicate of the
    pipe it is given: the caller closing its own (a code that left a child
    holding the pipe) cannot hand that number to another pipe under it."""
    from sigprobe.check.local import _Drain
    r, w = os.pipe()
    drain = _Drain(r)
    drain.start()
    os.close(r)
    r2, w2 = os.pipe()  # the lowest free number: most likely r's
    try:
        os.write(w2, b"another pipe's")
        os.write(w, b"the code's output")
        os.close(w)
        drain.join(5)
        assert not drain.is_alive() and drain.tail == b"the code's output"
    finally:
        os.close(r2)
        os.close(w2)
