"""The two examples of README.md's "Use it from OpenFeature", run as they are against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server import ROOT, running_server
from tests.ofrep.test_web_provider import JS, npm_ci

pytestmark = pytest.mark.integration

SECTION = ROOT.joinpath("README.md").read_text().split("## Use it from OpenFeature")[1].split("\n## ")[0]
PRINTED = "hero_vip TARGETING_MATCH Thank you for being one of our best customers"
README_URL = "http://127.0.0.1:8080"


def _example(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_both_examples_are_ten_lines_or_so() -> None:
    assert all(len(_example(lang).strip().splitlines()) <= 10 for lang in ("js", "python"))
    assert PRINTED in SECTION


def test_the_examples_print_what_the_readme_says(tmp_path: Path) -> None:
    npm_ci()
    script = JS / "readme_example.mjs"
    with running_server() as base:
        python = subprocess.run(
            [sys.executable, "-c", _example("python").replace(README_URL, base)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        # node 20 has no EventSource: the browser's is the polyfill's here
        prelude = 'import { EventSource } from "eventsource";\nglobalThis.EventSource = EventSource;\n'
        script.write_text(prelude + _example("js").replace(README_URL, base) + "process.exit(0);\n")
        try:
            node = subprocess.run(
                ["node", script.name], cwd=JS, capture_output=True, text=True, timeout=60, check=False
            )
        finally:
            script.unlink()
    assert python.stdout.strip() == PRINTED, python.stderr[-3000:]
    assert node.stdout.strip() == PRINTED, node.stderr[-3000:]
