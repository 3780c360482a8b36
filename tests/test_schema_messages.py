"""Schema messages are ours: one per place in the file, none in the validation library's words."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.bundle.schema_errors import OPERATOR_ALIASES, schema_problems
from service.core.spec import OPERATORS, RulesFile

# Phrases of pydantic's own messages and locations that must never reach a rule file's author.
LIBRARY_WORDING = ["Input should", "input should", "after validation", "valid dictionary", "instance of",
                   "Field required", "Extra inputs", "_shape()", "function-after", "[type=", "Value error"]  # fmt: skip
KEYS = [*OPERATORS, "attr", "context", "model", "item", "all", "any", "not", "segment", "ignore_case", "nin", "x"]

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    max_leaves=8,
)
conditions = st.dictionaries(st.sampled_from(KEYS), junk, min_size=1, max_size=3) | junk


def _problems(condition: Any) -> list[str]:
    data = {"version": 1, "segments": {"s": {"when": condition}}}
    try:
        RulesFile.model_validate(data)
    except ValidationError as exc:
        return [p.render() for p in schema_problems("r.yaml", RulesFile, data, exc)]
    return []


@settings(max_examples=400, deadline=None)
@given(conditions)
def test_every_message_is_in_our_words_and_one_per_place(condition: Any) -> None:
    rendered = _problems(condition)
    places = [line.split(": ")[1] for line in rendered]
    assert len(places) == len(set(places)), rendered
    for line in rendered:
        assert not [phrase for phrase in LIBRARY_WORDING if phrase in line], line


def test_other_systems_operators_suggest_ours() -> None:
    for alias, ours in OPERATOR_ALIASES.items():
        assert ours in (*OPERATORS, "ignore_case"), alias
        [message] = _problems({"attr": "a", alias: 1})
        assert f"(did you mean '{ours}'?)" in message, message
