"""`tailor train` end to end on a small generated CSV file."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from service.training.cards import read_card
from service.training.command import main
from service.training.report import FIGURES
from service.training.transactions import default_cutoff, load

from .conftest import ROOT, shop


def test_train_on_a_csv_writes_models_cards_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = shop(tmp_path / "shop.csv")
    out, report = tmp_path / "models", tmp_path / "report"
    code = main(["--data", str(data), "--out", str(out), "--report", str(report), "--seed", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    cutoff = default_cutoff(load(data))
    for name in ("rfm", "churn", "value", "purchases"):
        card = read_card(out / f"{name}.yaml")
        assert (out / card.file).is_file()
        assert card.training.cutoff == cutoff  # the last 273 days are the outcome window
        assert card.training.outcome_window_days == 273
        assert card.training.seed == 1
    assert "lapsed" in (read_card(out / "rfm.yaml").output.labels or {}).values()
    assert all((report / figure).is_file() for figure in FIGURES.values())
    text = (report / "REPORT.md").read_text()
    assert "WARNING: segment" in text  # 240 customers: every segment is under 100
    assert "rfm:   k=" in printed
    assert ", lowered from 3: a cluster was under 100 customers;" in printed  # as the report says
    assert "churn: ROC AUC" in printed
    assert "value (out of time): MAE" in printed
    assert "WARNING: segment" in printed


def test_format_flag_and_cutoff_flag(tmp_path: Path) -> None:
    data = shop(tmp_path / "shop.txt")  # not *.csv: --format says what it is
    out = tmp_path / "models"
    args = ["--data", str(data), "--format", "csv", "--cutoff", "2024-06-01", "--out", str(out)]
    assert main([*args, "--report", str(tmp_path / "report")]) == 0
    assert read_card(out / "churn.yaml").training.cutoff == date(2024, 6, 1)


def test_horizon_flag_sets_the_outcome_window(tmp_path: Path) -> None:
    data = shop(tmp_path / "shop.csv")
    out = tmp_path / "models"
    assert main(["--data", str(data), "--horizon", "91", "--out", str(out), "--report", str(tmp_path / "r")]) == 0
    card = read_card(out / "churn.yaml")
    assert card.training.outcome_window_days == 91
    assert card.training.cutoff == default_cutoff(load(data), 91)
    assert "next 91 days" in card.description


def test_a_broken_file_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "shop.csv"
    data.write_text("customer_id,date,amount\nc1,yesterday,5\n")
    assert main(["--data", str(data), "--out", str(tmp_path / "m"), "--report", str(tmp_path / "r")]) == 1
    assert "shop.csv:2: date 'yesterday' is not YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--cutoff", "October"])
    assert exit_info.value.code == 2
    assert "--cutoff" in capsys.readouterr().err


MISSING = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.modules.pop({module!r}, None)
sys.meta_path.insert(0, Missing())
from service.cli import main
raise SystemExit(main(["train", "--out", {out!r}, "--report", {report!r}]))
"""


@pytest.mark.parametrize("module", ["matplotlib", "sklearn", "skl2onnx"])
def test_without_the_training_dependencies_it_says_what_to_install(tmp_path: Path, module: str) -> None:
    """`make run` installs only the serving dependencies: `tailor train` there explains, no traceback."""
    out, report = tmp_path / "m", tmp_path / "r"
    code = MISSING.format(module=module, out=str(out), report=str(report))
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("tailor train: the training dependencies are not installed")
    assert f"(no module named '{module}')" in done.stderr
    assert "make train" in done.stderr
    assert "pip install -r requirements/dev.lock" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not report.exists()
