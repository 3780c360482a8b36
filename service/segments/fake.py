"""A scorer without a model, for unit tests of what surrounds scoring (next to real ONNX tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class FakeScorer:
    """Answers with a function of the row, and records each row it was asked about."""

    def __init__(self, answer: Callable[[Sequence[float]], str | float]) -> None:
        self._answer = answer
        self.rows: list[list[float]] = []

    def score(self, row: Sequence[float]) -> str | float:
        self.rows.append(list(row))
        return self._answer(row)
