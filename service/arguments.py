"""Arguments the ``tailor`` commands share, so that each command takes them the same way."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from service.settings import parse_number

BUNDLE_FLAG = "bundle_flag"


def add_bundle_flag(parser: argparse.ArgumentParser) -> None:
    """``--bundle DIR`` beside a command's positional folder: serve, decide and analyze take the flag,
    and a user who learnt it there types it here too."""
    parser.add_argument("--bundle", dest=BUNDLE_FLAG, type=Path, metavar="DIR", help="the bundle folder, as a flag")


def bundle_of(args: argparse.Namespace, positional: Path | None) -> Path:
    """The folder named by ``--bundle`` or by position (default ``.``); naming two different ones is an error."""
    flag: Path | None = getattr(args, BUNDLE_FLAG, None)
    if flag is not None and positional is not None and flag != positional:
        raise ValueError(f"the bundle is named twice: --bundle {flag} and {positional}")
    return flag or positional or Path(".")


def setting_number(name: str) -> Callable[[str], int | float]:
    """The type of a flag that overrides a numeric setting: the flag is held to the setting's range."""

    def parse(raw: str) -> int | float:
        try:
            return parse_number(name, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """The type of a flag that takes a whole number in [low, high], worded as the settings word theirs
    ("'X' is below N"), so a user reads one language whether a number came from a flag or the environment."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{raw!r} is below {low}")
        if value > high:
            raise argparse.ArgumentTypeError(f"{raw!r} is above {high}")
        return value

    return parse
