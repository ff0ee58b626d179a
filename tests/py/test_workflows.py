"""The CI workflow files: valid YAML, and mirroring .ci/run."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_there_are_workflows():
    assert WORKFLOWS


def test_workflows_parse_and_cover_three_platforms():
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert isinstance(doc, dict) and doc.get("jobs"), path
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    configs = ci["jobs"]["test"]["strategy"]["matrix"]["config"]
    assert {c["platform"] for c in configs} == {"linux", "macos", "windows"}
    assert ci["jobs"]["test"]["strategy"]["fail-fast"] is False


def test_posix_jobs_run_the_same_command_as_ci_run():
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "scripts/sigprobe test" in ci_run
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["test"]["steps"]
    assert any(s.get("run") == ".ci/run" for s in steps)
