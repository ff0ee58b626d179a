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


def test_wheels_are_built_tested_and_uploaded_on_every_platform():
    import tomllib
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    wheels = jobs["wheels"]
    assert wheels["strategy"]["fail-fast"] is False
    assert {c["os"].split("-")[0] for c in wheels["strategy"]["matrix"]["config"]} == {"ubuntu", "macos", "windows"}
    uses = [s.get("uses", "") for s in wheels["steps"]]
    assert any(u.startswith("pypa/cibuildwheel@") for u in uses) and any("upload-artifact" in u for u in uses)
    cibw = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    script = cibw["test-command"].split()[-1].replace("{project}", str(ROOT))
    assert Path(script).is_file() and {"ipykernel", "jupyter_client"} <= set(cibw["test-requires"])
