"""One broken file gets its own problems and nothing else, and the other files are still checked.

Each case breaks one file of the example bundle and adds ``rules/probe.yaml`` with an error the
compiler finds (two rules with one name): both must be reported, and no follow-on error of the
broken file (an "unknown segment" where its names are used, say) may appear anywhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from service.bundle.loader import bundle_files, load_bundle
from service.core.errors import BundleError

ROOT = Path(__file__).parents[1]
FILES = [p.relative_to(ROOT).as_posix() for p in bundle_files(ROOT) if p.suffix == ".yaml"]
BREAKAGES: dict[str, Callable[[str], str]] = {
    "yaml syntax": lambda text: text + "\nbroken: [unclosed\n",
    "schema": lambda text: text + "\nunknown_section: {}\n",
    "not a mapping": lambda _text: "- just\n- a list\n",
}


PROBE = """version: 1
placements:
  probe:
    default: hero_default
    rules:
      - { name: twice, serve: hero_vip }
      - { name: twice, serve: hero_bold }
"""
PROBE_PROBLEM = (
    "rules/probe.yaml:7: placements.probe.rules[1].name: rule name 'twice' is already used by rules[0] of placement "
    "'probe'"
)


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("name", FILES)
def test_a_broken_file_is_the_only_file_with_problems(name: str, breakage: str, tmp_path: Path) -> None:
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, tmp_path / kind)
    path = tmp_path / name
    path.write_text(BREAKAGES[breakage](path.read_text()))
    (tmp_path / "rules" / "probe.yaml").write_text(PROBE)
    with pytest.raises(BundleError) as caught:
        load_bundle(tmp_path)
    rendered = [p.render() for p in caught.value.problems]
    assert {p.file for p in caught.value.problems} == {name, "rules/probe.yaml"}, rendered
    assert PROBE_PROBLEM in rendered
