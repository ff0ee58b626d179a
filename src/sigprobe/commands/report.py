"""`sigprobe report` and `sigprobe compare`: both read results documents only
(standard library, no build)."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import paths
from ..errors import BadInput


def add_parsers(sub) -> None:
    r = sub.add_parser("report",
                       description="Merges results documents from several platforms into one reference: "
                                   "\"Choosing an interrupt strategy\", the machines, the matrices, latency per "
                                   "delivery path and every Wine deviation, as Markdown and as one self-contained "
                                   "HTML page. Without --md/--html it writes README.md and reference.html beside "
                                   "the results documents.")
    r.add_argument("documents", nargs="*", type=Path, metavar="RESULTS.json",
                   help=f"results documents (default: every {paths.rel(paths.results_dir())}/*.json)")
    r.add_argument("--md", type=Path, metavar="FILE", help="write the Markdown here ('-': stdout)")
    r.add_argument("--html", type=Path, metavar="FILE", help="write the HTML page here ('-': stdout)")
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare",
                       description="Lists the cells whose verdict differs (a flaky cell differs when it "
                                   "alternates between other verdicts) and those present in only one document. "
                                   "Exit 0: none differ; 1: some differ; 2: bad input.")
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument("--ignore-platform", action="store_true",
                   help="match cells by host/strategy/delivery, ignoring the platform prefix "
                        "(e.g. linux vs windows-wine, or two names for one platform)")
    c.add_argument("--json", action="store_true", help="print the differences as JSON")
    c.set_defaults(func=cmd_compare)


def cmd_report(args) -> int:
    from ..export import report
    from ..results import document as results
    where = paths.results_dir()
    docs = args.documents or sorted(where.glob("*.json"))
    if not docs:
        raise BadInput(f"no results documents given and none in {paths.rel(where)}/ (run `sigprobe run` first)")
    outputs = {"md": args.md, "html": args.html}
    if not args.md and not args.html:
        outputs = {"md": where / "README.md", "html": where / "reference.html"}
    for kind, out in outputs.items():
        if out and str(out) != "-" and not out.parent.is_dir():
            raise BadInput(f"--{kind} {out}: the directory {out.parent} does not exist")
    sources = report.load_sources(docs)
    for kind, out in outputs.items():
        if not out:
            continue
        text = (report.markdown(sources, Path.cwd() if str(out) == "-" else out.parent) if kind == "md"
                else report.html_page(sources))
        if str(out) == "-":
            sys.stdout.write(text)
        else:
            results.write_atomically(out, text)
            print(f"sigprobe: wrote {paths.rel(out)}", file=sys.stderr)
    print(f"sigprobe: {len(sources)} documents, {sum(len(s.cells) for s in sources)} cells: "
          + ", ".join(s.label for s in sources), file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    from ..results import compare
    diff = compare.compare(args.a, args.b, args.ignore_platform)
    print(compare.dumps(diff) if args.json else compare.text(diff), end="" if args.json else "\n")
    return 1 if compare.has_differences(diff) else 0
