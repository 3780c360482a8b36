"""Broken bundles and the exact messages they get: tests/invalid/<case>/expected.txt.

Each case folder holds ``rules/`` (and ``content/`` when the case is about content;
otherwise the example bundle's content is used), or ``overlay/``: files laid over a
copy of the whole example bundle (a broken template, an extra content file).
``expected.txt`` lists every problem as ``tailor validate`` prints it, in one pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.bundle.loader import load_bundle
from service.bundle.store import BundleStore
from service.core.decide import DecisionRequest, decide
from service.core.errors import BundleError

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CASES = sorted(p for p in (TESTS / "invalid").iterdir() if p.is_dir())


def _bundle_from(case: Path, tmp_path: Path) -> Path:
    target = tmp_path / case.name
    if (case / "overlay").is_dir():
        for part in ("rules", "content", "models"):
            shutil.copytree(ROOT / part, target / part)
        shutil.copytree(case / "overlay", target, dirs_exist_ok=True)
        return target
    shutil.copytree(case, target, ignore=shutil.ignore_patterns("expected.txt"))
    if not (target / "content").exists():
        shutil.copytree(ROOT / "content", target / "content")
    return target


def _rendered(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [p.render() for p in sorted(problems, key=lambda p: (p.file, p.line or 0))]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_problem_is_reported_with_file_and_line(case: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError) as caught:
        load_bundle(_bundle_from(case, tmp_path))
    expected = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert _rendered(caught.value.problems) == expected


def test_validate_command_prints_problems_and_fails(tmp_path: Path) -> None:
    bundle = _bundle_from(TESTS / "invalid" / "misspelt_names", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "validate", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 1
    first = (TESTS / "invalid" / "misspelt_names" / "expected.txt").read_text().splitlines()[0]
    assert f"{bundle.as_posix()}/{first}" in done.stdout.splitlines()
    assert "6 error(s)" in done.stderr


def test_validate_command_accepts_the_example_bundle() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "validate"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("ok: . revision ")


def test_missing_rules_folder_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "content", tmp_path / "content")
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    # No server path in the message: /v1/bundle shows it to anyone; the CLI prefixes the bundle folder itself.
    assert [p.render() for p in caught.value.problems] == ["rules/: the bundle has no 'rules' folder"]


def test_a_broken_bundle_never_replaces_the_working_one(tmp_path: Path) -> None:
    store = BundleStore()
    good = store.load(ROOT)
    assert good.ok
    before = store.current
    report = store.load(_bundle_from(TESTS / "invalid" / "segment_cycle", tmp_path))
    assert not report.ok
    assert store.current is before
    assert store.last_problems == report.problems
    assert store.load(ROOT).ok
    assert store.last_problems == ()


HINT = "in { … } and [ … ] a comma ends unquoted text, so quote text that holds commas"
NULL_CONTENT = {  # content file text → the warnings it gets (unquoted text with a comma in a flow mapping, mostly)
    "    content: { headline: Sun, sand and 20% off }\n": [
        (
            "content/offers.yaml:4: variants.summer.content.sand and 20% off: warning: "
            f"'sand and 20% off' has no value (null); {HINT}"
        )
    ],
    "    content:\n      cta: { text: Buy, url: }\n      tags: [a, null]\n": [
        f"content/offers.yaml:5: variants.summer.content.cta.url: warning: 'url' has no value (null); {HINT}",
        f"content/offers.yaml:6: variants.summer.content.tags[1]: warning: item [1] has no value (null); {HINT}",
    ],
    "    content: { headline: 'Sun, sand and 20% off' }\n"
    "    render: { template: hero.html, params: { headline: hero.default.headline, cta: hero.default.cta, a: } }\n": [
        f"content/offers.yaml:5: variants.summer.render.params.a: warning: 'a' has no value (null); {HINT}"
    ],
}


@pytest.mark.parametrize("text", NULL_CONTENT, ids=["flow mapping", "nested", "params"])
def test_a_content_field_without_a_value_gets_a_warning_with_its_line(text: str, tmp_path: Path) -> None:
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "content" / "offers.yaml").write_text(f"version: 1\nvariants:\n  summer:\n{text}")
    bundle = load_bundle(tmp_path)
    warnings = [p.render() for p in bundle.warnings if "has no value" in p.message]
    assert warnings == NULL_CONTENT[text]


def test_a_model_file_without_its_card_is_named_where_a_rule_uses_it(tmp_path: Path) -> None:
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "models" / "churn.yaml").unlink()
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    [problem] = caught.value.problems
    assert problem.render() == (
        "rules/segments.yaml:66: segments.likely_churn.when.all[1].model: unknown model 'churn': models/churn.onnx"
        " is there, but no model card names it (a models/*.yaml with its name, file, inputs and outputs)"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing", "the bundle folder does not exist"), ("a-file.yaml", "the bundle is a file, not a folder")],
)
def test_a_bundle_that_is_no_folder_is_one_problem(name: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "a-file.yaml").write_text("version: 1\n")
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path / name)
    assert [p.render() for p in caught.value.problems] == [f".: {message}"]
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "validate", str(tmp_path / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == f"{(tmp_path / name).as_posix()}: {message}\n"


@pytest.mark.parametrize("end", ["2027-01-31", "2027-01-31T00:00:00"])
def test_an_experiment_time_without_a_zone_is_utc_next_to_one_with_a_zone(end: str, tmp_path: Path) -> None:
    """`start` with Z and `end` without: comparing them was a TypeError traceback in validate, test and decide."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    placements = tmp_path / "rules" / "placements.yaml"
    text = placements.read_text(encoding="utf-8")
    assert "end: 2027-01-31T00:00:00Z" in text
    placements.write_text(text.replace("end: 2027-01-31T00:00:00Z", f"end: {end}"), encoding="utf-8")
    ends = {name: e.end for name, e in load_bundle(tmp_path).experiments.items() if e.end is not None}
    assert list(ends.values()) == [datetime(2027, 1, 31, tzinfo=UTC).timestamp()]


@pytest.mark.parametrize(
    ("test", "warned"),
    [
        ('{ attr: spend, gte: "500" }', True),
        ('{ attr: spend, lt: "-1.5e3" }', True),
        ("{ attr: spend, gte: 500 }", False),
        ('{ attr: seen, gte: "2026-01-01" }', False),  # dates in text order as times do
        ('{ attr: zip, eq: "01234" }', False),  # equality with text is meant
    ],
)
def test_a_number_in_quotes_in_an_ordering_test_gets_a_warning(test: str, warned: bool, tmp_path: Path) -> None:
    """`gte: "500"` validated without a word and never held for a visitor with 800."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "rules" / "extra.yaml").write_text(f"version: 1\nsegments:\n  quoted:\n    when: {test}\n")
    bundle = load_bundle(tmp_path)
    warnings = [p.render() for p in bundle.warnings if "is text in quotes" in p.message]
    assert len(warnings) == warned
    if warned:
        assert warnings[0].startswith("rules/extra.yaml:4: segments.quoted.when.")
        request = DecisionRequest("v", {"spend": 800}, datetime(2026, 12, 1, tzinfo=UTC), personalization=True)
        assert ("quoted" in decide(bundle, request).segments) is False  # what the warning says


ONE_ARMED = {  # status and arms of an experiment → its warning (None: no warning)
    ("running", "[{ key: only, variant: hero_bold }]"): (
        "rules/extra.yaml:6: experiments.solo.arms: warning: experiment 'solo' has one arm, so it compares nothing: "
        "add a control arm, or serve 'hero_bold' from a rule"
    ),
    ("draft", "[{ key: a, variant: hero_bold, weight: 0 }, { key: b, variant: hero_default, weight: 10 }]"): (
        "rules/extra.yaml:6: experiments.solo.arms: warning: experiment 'solo' gives every visitor arm 'b' "
        "(the others weigh 0), so it compares nothing: add a control arm, or serve 'hero_default' from a rule"
    ),
    ("stopped", "[{ key: only, variant: hero_bold }]"): None,  # a stopped experiment serves nothing
    ("running", "[{ key: a, variant: hero_bold }, { key: b, variant: hero_default }]"): None,
}


@pytest.mark.parametrize(("status", "arms"), list(ONE_ARMED), ids=["one-arm", "one-weighted", "stopped", "two"])
def test_an_experiment_with_one_arm_to_draw_gets_a_warning_at_its_arms(status: str, arms: str, tmp_path: Path) -> None:
    """An A/B test of one arm validated without a word, and its results could never compare anything."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    text = (
        f"version: 1\nexperiments:\n  solo:\n    status: {status}\n    start: 2026-11-01T00:00:00Z\n    arms: {arms}\n"
    )
    (tmp_path / "rules" / "extra.yaml").write_text(text)
    warnings = [p.render() for p in load_bundle(tmp_path).warnings if "compares nothing" in p.message]
    expected = ONE_ARMED[status, arms]
    assert warnings == ([] if expected is None else [expected])


SECTIONS = [("rules", "segments"), ("rules", "placements"), ("rules", "experiments"), ("content", "variants")]


@pytest.mark.parametrize(("folder", "section"), SECTIONS, ids=[s for _, s in SECTIONS])
def test_a_misspelt_section_key_is_its_file_s_one_error(folder: str, section: str, tmp_path: Path) -> None:
    """Every section that defines names: its names are left unresolved, not called unknown where they are used."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    [path] = [p for p in (tmp_path / folder).glob("*.yaml") if f"\n{section}:" in p.read_text(encoding="utf-8")]
    path.write_text(path.read_text(encoding="utf-8").replace(f"\n{section}:", f"\n{section[:-1]}:"), encoding="utf-8")
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    assert [p.message for p in caught.value.problems] == [f"unknown key '{section[:-1]}' (did you mean '{section}'?)"]


@pytest.mark.parametrize("name", ["rules/segments.yaml", "content/variants.yaml", "content/locales/de.yaml"])
def test_every_yaml_file_starts_with_version_1(name: str, tmp_path: Path) -> None:
    """What docs/TEMPLATES.md says of locale and content files too."""
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, tmp_path / part)
    path = tmp_path / name
    path.write_text(path.read_text(encoding="utf-8").replace("version: 1\n", "", 1), encoding="utf-8")
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    assert [(p.file, p.message) for p in caught.value.problems] == [(name, "missing required key 'version'")]
