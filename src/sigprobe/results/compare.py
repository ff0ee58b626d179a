"""`sigprobe compare A.json B.json`: the cells whose verdict differs between
two results documents, and the cells only one of them has. For CI gating
(before/after an ipykernel upgrade) and across platforms (linux vs
windows-wine) with --ignore-platform, which matches cells by
host/strategy/delivery.

Two cells differ when their verdicts differ. Two flaky cells differ only when
the share of runs giving some verdict differs beyond chance (Fisher's exact
test, two-sided, p < SIGNIFICANCE): a flaky cell's split changes from run to
run, and an outcome seen once in 20 runs and not in the next 20 is not a
change. A cell that disagrees gets up to 20 runs (checkpoint.FLAKY_RUNS), so
a real change in proportion shows."""
from __future__ import annotations

import json
from pathlib import Path

from math import comb

from ..errors import BadInput
from . import document as results
from .document import flaky_rate


def key_of(cell: dict, ignore_platform: bool) -> str:
    return cell["id"].split("/", 1)[1] if ignore_platform and "/" in cell["id"] else cell["id"]


def _index(path: Path, doc: dict, ignore_platform: bool) -> dict[str, dict]:
    out = {}
    for c in doc["cells"]:
        k = key_of(c, ignore_platform)
        if k in out:
            raise BadInput(f"{path}: cell {k} appears twice")
        out[k] = c
    return out


SIGNIFICANCE = 0.01


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test for k1 of n1 against k2 of n2:
    the probability, with the margins fixed, of a table no likelier than this one."""
    k, n = k1 + k2, n1 + n2
    if n1 == 0 or n2 == 0:
        return 1.0
    def p(x):
        return comb(n1, x) * comb(n2, k - x) / comb(n, k)
    seen = p(k1)
    return min(1.0, sum(q for x in range(max(0, k - n2), min(k, n1) + 1) if (q := p(x)) <= seen * (1 + 1e-9)))


def differs(a: dict, b: dict) -> bool:
    if a["verdict"] != b["verdict"]:
        return True
    if a["verdict"] != "flaky":
        return False
    ca, cb = a.get("counts", {}), b.get("counts", {})
    na, nb = sum(ca.values()), sum(cb.values())
    return any(fisher_exact(ca.get(v, 0), na, cb.get(v, 0), nb) < SIGNIFICANCE for v in set(ca) | set(cb))


def _summary(c: dict) -> dict:
    s = {"id": c["id"], "verdict": c["verdict"], "counts": c.get("counts", {})}
    if results.incomplete(c):
        s["incomplete"] = results.incomplete(c)
    if c.get("reasons"):
        s["reasons"] = c["reasons"]
    return s


def compare(a_path: Path, b_path: Path, ignore_platform: bool = False) -> dict:
    a_doc, b_doc = results.load(a_path), results.load(b_path)
    a, b = _index(a_path, a_doc, ignore_platform), _index(b_path, b_doc, ignore_platform)
    changed = [{"key": k, "a": _summary(a[k]), "b": _summary(b[k])} for k in a if k in b and differs(a[k], b[k])]
    # A cell without all its runs is never counted as the same as a full one.
    incomplete = [{"key": k, "a": _summary(a[k]), "b": _summary(b[k])} for k in a
                  if k in b and not differs(a[k], b[k]) and (results.incomplete(a[k]) or results.incomplete(b[k]))]
    return {
        "a": {"path": str(a_path), "platform": a_doc.get("platform"), "partial": bool(a_doc.get("partial")),
              "cells": len(a)},
        "b": {"path": str(b_path), "platform": b_doc.get("platform"), "partial": bool(b_doc.get("partial")),
              "cells": len(b)},
        "key": "host/strategy/delivery" if ignore_platform else "id",
        "changed": changed,
        "only_a": [_summary(a[k]) for k in a if k not in b],
        "only_b": [_summary(b[k]) for k in b if k not in a],
        "incomplete": incomplete,
        "same": sum(1 for k in a if k in b and not differs(a[k], b[k])) - len(incomplete),
    }


def has_differences(diff: dict) -> bool:
    """Exit 1 also for incomplete cells: a gate cannot call them the same."""
    return bool(diff["changed"] or diff["only_a"] or diff["only_b"] or diff["incomplete"])


def _verdict(c: dict) -> str:
    v = f"flaky ({flaky_rate(c)})" if c["verdict"] == "flaky" else c["verdict"]
    return f"{v} ({c['incomplete']})" if c.get("incomplete") else v


def text(diff: dict) -> str:
    a, b = diff["a"], diff["b"]
    lines = [f"A: {a['path']} ({a['platform']}, {a['cells']} cells{', partial' if a['partial'] else ''})",
             f"B: {b['path']} ({b['platform']}, {b['cells']} cells{', partial' if b['partial'] else ''})"]
    if diff["key"] != "id":
        lines.append(f"cells matched by {diff['key']}, ignoring the platform")
    for ch in diff["changed"]:
        lines.append(f"changed  {ch['key']}: {_verdict(ch['a'])} -> {_verdict(ch['b'])}")
    for c in diff["only_a"]:
        lines.append(f"only A   {c['id']}: {_verdict(c)}")
    for c in diff["only_b"]:
        lines.append(f"only B   {c['id']}: {_verdict(c)}")
    for ch in diff["incomplete"]:
        lines.append(f"incomplete {ch['key']}: {_verdict(ch['a'])} -> {_verdict(ch['b'])}")
    lines.append(f"{len(diff['changed'])} changed, {len(diff['only_a'])} only in A, {len(diff['only_b'])} only in B, "
                 f"{diff['same']} the same" + (f", {len(diff['incomplete'])} incomplete" if diff["incomplete"] else ""))
    return "\n".join(lines)


def dumps(diff: dict) -> str:
    return json.dumps(diff, indent=2) + "\n"
