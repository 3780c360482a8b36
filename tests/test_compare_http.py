"""The side-by-side runner compares like with like: GrowthBook gets flags20's rules and the same visitors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from loadtests.compare_http import (
    COLD_VISITORS,
    GROWTHBOOK,
    VARIANTS,
    growthbook_features,
    tailor,
    variant_server,
    write_inputs,
)
from service.core.models import MEMO_ROWS
from tests.bench.workload import FLAGS20

PINNED = "1.1.2"


def test_the_growthbook_features_are_the_flags20_rules() -> None:
    spec = yaml.safe_load((FLAGS20 / "rules" / "flags.yaml").read_text())
    features = growthbook_features()["features"]
    assert features.keys() == spec["placements"].keys()
    for name, placement in spec["placements"].items():
        (rule,) = placement["rules"]
        (gb_rule,) = features[name]["rules"]
        assert gb_rule["condition"] == {rule["when"]["attr"]: rule["when"]["eq"]}
        assert gb_rule["key"] == rule["experiment"]
        arms = spec["experiments"][rule["experiment"]]["arms"]
        assert sorted(gb_rule["weights"]) == sorted(arm["weight"] / 100 for arm in arms) == [0.5, 0.5]
        assert (gb_rule["hashAttribute"], gb_rule["hashVersion"]) == ("id", 2)
        assert (features[name]["defaultValue"], placement["default"]) == (False, "flag_off")


def test_both_servers_get_the_same_visitors(tmp_path: Path) -> None:
    tailor, growthbook, example, cold, features = write_inputs(tmp_path)
    tailor_visitors = [json.loads(line)["visitor"] for line in tailor.read_text().splitlines()]
    gb_visitors = [json.loads(line)["attributes"] for line in growthbook.read_text().splitlines()]
    assert len(tailor_visitors) == len(gb_visitors) == len(example.read_text().splitlines()) == 1000
    cold_ids = [json.loads(line)["visitor"].get("id") for line in cold.read_text().splitlines()]
    assert len(cold_ids) == COLD_VISITORS > 7 * MEMO_ROWS  # every row gone from the memo before it comes again
    assert [{"id": v["id"], **v["attributes"]} for v in tailor_visitors] == gb_visitors
    assert all(v["consent"] == {"personalization": True} for v in tailor_visitors)
    assert json.loads(features.read_text()) == growthbook_features()


def test_the_growthbook_evaluator_is_pinned_with_a_lock_file() -> None:
    package = json.loads((GROWTHBOOK / "package.json").read_text())
    lock = json.loads((GROWTHBOOK / "package-lock.json").read_text())
    assert package["dependencies"] == {"@growthbook/proxy-eval": PINNED}
    locked = lock["packages"]["node_modules/@growthbook/proxy-eval"]
    assert locked["version"] == PINNED
    assert locked["integrity"].startswith("sha512-")


def test_a_variant_can_run_its_server_under_another_command(tmp_path: Path) -> None:
    pinned = variant_server("one-core", VARIANTS["one-core"], tmp_path, tmp_path / "bodies")
    assert pinned.command(8000) == ["taskset", "-c", "0", *tailor()(8000)]
