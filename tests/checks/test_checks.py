"""``tailor test`` as data: check files run against a small bundle, with the exact output they must give.

* ``runs/<case>.yaml``: a check file; ``<case>.expected`` is everything ``tailor test``
  prints for it (``--coverage`` for cases named ``coverage_*``). The exit status is 1
  when the last line counts a failure, else 0.
* ``invalid/<case>.yaml``: a broken check file; ``<case>.expected`` lists every problem
  as ``file:line: path: message``; the exit status is 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.bundle.archive import build_archive
from service.bundle.loader import bundle_files, load_bundle, revision_of
from service.checks.files import read_checks
from service.checks.runner import run_check
from service.cli import main

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BUNDLE = "tests/checks/bundle"
RUNS = sorted((HERE / "runs").glob("*.yaml"))
INVALID = sorted((HERE / "invalid").glob("*.yaml"))


def _tailor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("case", RUNS, ids=[c.stem for c in RUNS])
def test_run_prints_what_is_expected(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--coverage"] if case.stem.startswith("coverage_") else []
    code, lines, _ = _tailor(capsys, BUNDLE, case.relative_to(ROOT).as_posix(), *options)
    expected = case.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert lines == expected
    assert code == (0 if expected[-1].endswith(" 0 failed") else 1)


@pytest.mark.parametrize("case", INVALID, ids=[c.stem for c in INVALID])
def test_invalid_check_file_is_reported_with_file_and_line(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = _tailor(capsys, BUNDLE, case.relative_to(ROOT).as_posix())
    assert lines == case.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert code == 2
    assert f"{len(lines)} error(s) in the check files; no test was run" in err


def test_the_example_bundle_checks_pass_and_reach_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = _tailor(capsys, "--coverage")
    assert code == 0
    assert lines[-1].endswith(" passed, 0 failed")
    placements = [line for line in lines if line.startswith("coverage ")]
    assert placements
    assert all(line.endswith("(100 %)") for line in placements), placements
    rules = lines[-2].split(", ")[0]  # "coverage: rules 11/11"
    reached, total = rules.removeprefix("coverage: rules ").split("/")
    assert reached == total


def test_every_unreached_item_is_listed_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A test file that reaches nothing lists every rule, default, arm, segment and variant of the bundle."""
    rules = (ROOT / BUNDLE / "rules" / "rules.yaml").read_text(encoding="utf-8").splitlines()
    _, out, _ = _tailor(capsys, BUNDLE, "tests/checks/runs/passes.yaml", "--coverage")
    assert "tests/checks/bundle/rules/rules.yaml:25: arm b of experiment hero_test in hero: no test reaches it" in out
    assert rules[24].strip() == "- { key: b, variant: gold, weight: 50 }"


def test_a_failing_bundle_is_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / BUNDLE, tmp_path / "b")
    rules = tmp_path / "b" / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("serve: gold", "serve: golden"), encoding="utf-8")
    code, lines, err = _tailor(capsys, str(tmp_path / "b"), "tests/checks/runs/passes.yaml")
    assert code == 2
    where = f"{(tmp_path / 'b').as_posix()}/rules/rules.yaml:12: placements.hero.rules[0].serve"
    assert lines == [f"{where}: unknown variant 'golden' (did you mean 'gold'?)"]
    assert "no test was run" in err


def test_a_bundle_without_checks_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _tailor(capsys, BUNDLE)
    assert code == 2
    assert "no check files in tests/checks/bundle/checks" in err


def test_junit_report_has_a_case_per_test_and_the_failure_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out" / "junit.xml"
    failures = "tests/checks/runs/failures.yaml"
    code, lines, _ = _tailor(capsys, BUNDLE, failures, "tests/checks/runs/passes.yaml", "--junit", str(report))
    assert code == 1
    suites = ET.parse(report).getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("15", "10")
    assert [s.get("name") for s in suites] == [failures, "tests/checks/runs/passes.yaml"]
    failed = suites[0].find("testcase[@name='the variant differs']/failure")
    assert failed is not None
    assert failed.get("message") == lines[0]
    assert suites[1].find("testcase/failure") is None


def test_checks_are_not_part_of_the_bundle_or_its_revision(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, bundle / part)
    before = revision_of(bundle)
    shutil.copytree(ROOT / "checks", bundle / "checks")
    assert revision_of(bundle) == before
    assert not any(path.is_relative_to(bundle / "checks") for path in bundle_files(bundle))
    manifest = build_archive(bundle, tmp_path / "bundle.tar.gz")
    assert manifest.revision == before
    assert not [name for name in manifest.files if name.startswith("checks/")]


def test_the_checks_package_loads_no_web_framework() -> None:
    code = "import sys, json; import service.checks.command; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    assert {"litestar", "granian", "duckdb"} & loaded == set()


@pytest.mark.parametrize("path", sorted(ROOT.glob("checks/**/*.yaml")), ids=str)
def test_example_checks_declare_their_schema(path: Path) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=../schema/checks.v1.schema.json\n")


def test_the_readme_shows_real_output() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    shown = [line for line in readme if line.startswith("tests/checks/runs/failures.yaml:")]
    expected = (HERE / "runs" / "failures.expected").read_text(encoding="utf-8").splitlines()
    assert shown
    assert set(shown) <= set(expected)
    assert expected[-1] in readme


def test_a_test_without_a_time_decides_at_the_current_time(tmp_path: Path) -> None:
    check_file = tmp_path / "now.yaml"
    check_file.write_text(
        "version: 1\ntests:\n  - name: no time\n    visitor: { id: v-1, consent: { personalization: true } }\n"
        "    expect: { hero: { reason: experiment } }\n",
        encoding="utf-8",
    )
    bundle = load_bundle(ROOT / BUNDLE)
    (check,), problems = read_checks([(check_file, "now.yaml")], bundle)
    assert problems == []
    before_start = run_check(bundle, check, clock=lambda: datetime(2025, 12, 1, tzinfo=UTC))
    after_start = run_check(bundle, check, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    assert [f.got for f in before_start.failures] == ["{reason: default}"]
    assert after_start.failures == []
