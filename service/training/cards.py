"""Model cards: built as ``ModelCard``, written as stable YAML next to the ONNX file.

Stable means: fields in the model's order, floats rounded to 6 significant digits, short
lists in flow style, and nothing that changes between two trainings on the same data
except ``training.trained_at``. ``model_version`` is ``<cutoff YYYYMMDD>-<12 hex digits>``, the
digits from a sha256 over what determines the model: the data's checksum, the training settings
(cutoff, horizon, seed) and the ONNX bytes (the code's effect). Never the clock: it changes exactly
when the data, a setting or the exported model does.

The YAML reads the same under PyYAML's YAML 1.1 rules and the YAML 1.2 core schema the bundle
loader uses: text that either would read as a number or a boolean is quoted.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from service.core.models import CARD_VERSION, FeatureSpec, ModelCard, OutputSpec, TensorSpec, TrainingInfo
from service.training.features import significant

SCHEMA_LINE = "# yaml-language-server: $schema=../schema/model-card.v1.schema.json"
HEADER = f"{SCHEMA_LINE}\n# Written by `tailor train` (service/training); retrain rather than edit.\n"

_NUMBER_OR_BOOL = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*|[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|0x[0-9a-fA-F_]+|0o?[0-7_]+"
    r"|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|null|Null|NULL|~)$"
)


def model_version(training: TrainingInfo, onnx_bytes: bytes) -> str:
    settings = f"{training.sha256}|{training.cutoff}|{training.outcome_window_days}|{training.seed}|"
    digest = hashlib.sha256(settings.encode() + onnx_bytes).hexdigest()
    return f"{training.cutoff:%Y%m%d}-{digest[:12]}"


def build_card(
    *,
    name: str,
    kind: str,
    description: str,
    specs: list[FeatureSpec],
    onnx_bytes: bytes,
    onnx_input: TensorSpec,
    onnx_outputs: list[TensorSpec],
    output: OutputSpec,
    training: TrainingInfo,
    metrics: dict[str, Any],
    segments: dict[str, int],
) -> ModelCard:
    """A validated card; ``metrics`` floats are rounded to 6 significant digits."""
    return ModelCard.model_validate(
        {
            "version": CARD_VERSION,
            "name": name,
            "model_version": model_version(training, onnx_bytes),
            "kind": kind,
            "description": description,
            "file": f"{name}.onnx",
            "inputs": specs,
            "onnx_input": onnx_input,
            "onnx_outputs": onnx_outputs,
            "output": output,
            "training": training,
            "metrics": rounded(metrics),
            "segments": segments,
        }
    )


def rounded(value: Any) -> Any:
    """Floats to 6 significant digits (non-finite ones to None), recursively."""
    if isinstance(value, float):
        return significant(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return value


def card_data(card: ModelCard) -> dict[str, Any]:
    """The card as plain data in field order, without the unset alternatives."""
    data: dict[str, Any] = card.model_dump(mode="python")
    for spec in data["inputs"]:
        spec["source"] = {key: _plain(value) for key, value in spec["source"].items() if value is not None}
        spec["clip"] = _plain(spec["clip"])
    data["output"] = {key: value for key, value in data["output"].items() if value is not None}
    return rounded(data)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if _NUMBER_OR_BOOL.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flat = all(item is None or isinstance(item, int | float | str) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat and len(value) <= 8)


def _date(dumper: yaml.SafeDumper, value: date) -> yaml.Node:
    text = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value.isoformat()
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)
_Dumper.add_representer(date, _date)
_Dumper.add_representer(datetime, _date)


def card_text(card: ModelCard) -> str:
    body = yaml.dump(card_data(card), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


def write_card(card: ModelCard, directory: Path) -> Path:
    path = directory / f"{card.name}.yaml"
    path.write_text(card_text(card), encoding="utf-8")
    return path


def read_card(path: Path) -> ModelCard:
    return ModelCard.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
