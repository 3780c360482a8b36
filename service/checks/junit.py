"""JUnit XML of a run, the report format CI systems read: one suite per check file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from service.checks.runner import Outcome


def junit_xml(outcomes: Sequence[Outcome]) -> bytes:
    root = ET.Element("testsuites", name="tailor test", tests=str(len(outcomes)), failures=str(_failed(outcomes)))
    for file, group in groupby(outcomes, key=lambda o: o.check.file):
        members = list(group)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(members)),
            failures=str(_failed(members)),
            errors="0",
            time=f"{sum(o.seconds for o in members):.6f}",
        )
        for outcome in members:
            case = ET.SubElement(
                suite, "testcase", name=outcome.check.name, classname=file, time=f"{outcome.seconds:.6f}"
            )
            if outcome.failures:
                lines = [f.render() for f in outcome.failures]
                failure = ET.SubElement(case, "failure", message=lines[0], type="expectation")
                failure.text = "\n".join(lines)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def write_junit(path: Path, outcomes: Sequence[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit_xml(outcomes))


def _failed(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for o in outcomes if o.failures)
