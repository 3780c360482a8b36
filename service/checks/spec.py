"""The check file format, version 1: ``checks/**/*.yaml`` in a bundle folder.

A check file lists tests. Each test is one visitor, as ``POST /v1/decide`` takes it
(``visitor`` and ``context``), optional stand-in model scores (``models``), and what the
decision must show (``expect``). The keys of ``expect`` are placement names, plus two
reserved ones: ``segments`` and ``experiments``.

The visitor and the context are decoded by the API's own wire structs, so a test file
accepts exactly what the API accepts; here they are plain mappings, and the JSON Schema
takes their part from the wire structs too (``check_schema``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from service.core.outcome import Reason
from service.core.spec import Name
from service.http import wire

CHECK_VERSION = 1
RESERVED = ("segments", "experiments")  # keys of expect that are not placements
WIRE_PARTS = {"visitor": wire.Visitor, "context": wire.Context}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Text = Annotated[StrictStr, Field(min_length=1)]


def _one_or_many(value: object) -> object:
    """``html_contains: Hello`` is short for ``html_contains: [Hello]``."""
    return [value] if isinstance(value, str) else value


Substrings = Annotated[list[Text], BeforeValidator(_one_or_many, json_schema_input_type=Text | list[Text])]


class PlacementExpect(_Model):
    """What one placement must get; every key given must match, the others are not checked."""

    variant: Name | None = Field(None, description="The variant key served.")
    reason: Reason | None = Field(None, description="Why it was served (targeting_match, experiment, default, ...).")
    rule: StrictStr | None = Field(None, description="The name of the rule that decided it.")
    html: StrictBool | None = Field(
        None, description="true: the variant's template rendered; false: no rendered HTML (no template, or it failed)."
    )
    html_contains: Substrings | None = Field(None, description="Text (or texts) the rendered HTML must contain.")


def _bare_variant(value: object) -> object:
    """``home_hero: hero_vip`` is short for ``home_hero: {variant: hero_vip}``."""
    return {"variant": value} if isinstance(value, str) else value


# One model behind both spellings, so that a mistake gets one message, not one per spelling.
PlacementExpectation = Annotated[
    PlacementExpect, BeforeValidator(_bare_variant, json_schema_input_type=Name | PlacementExpect)
]


class SegmentExpect(_Model):
    includes: list[Name] = Field(default_factory=list, description="Segments the visitor must be in.")
    excludes: list[Name] = Field(default_factory=list, description="Segments the visitor must not be in.")


class Expect(BaseModel):
    """Placement name → a variant key or a PlacementExpect; plus ``segments`` and ``experiments``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[Name, PlacementExpectation] = Field(init=False)

    segments: SegmentExpect | None = None
    experiments: dict[Name, Name] | None = Field(
        None, description="Experiment → the arm the visitor must enter (in any placement that runs it)."
    )

    @model_validator(mode="after")
    def _something(self) -> Expect:
        nothing = not self.__pydantic_extra__ and self.segments is None and not self.experiments
        if nothing:  # a test that expects nothing always passes
            raise ValueError("a test must expect something: a placement, segments or experiments")
        return self


ModelScore = StrictStr | StrictInt | StrictFloat


class CheckTest(_Model):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    visitor: dict[str, Any] = Field(description="As in POST /v1/decide: {id, attributes, consent}.")
    context: dict[str, Any] = Field(
        default_factory=dict, description="As in POST /v1/decide: {now, locale, page, currency}."
    )
    models: dict[Name, ModelScore] = Field(
        default_factory=dict,
        description="Stand-in outputs of segment models (a label, a probability or a value); the models do not run.",
    )
    expect: Expect


class ChecksFile(_Model):
    """A check file: ``checks/**/*.yaml``."""

    model_config = ConfigDict(title="Tailor check file, version 1")

    version: Literal[1]
    tests: list[CheckTest] = Field(min_length=1)


def check_schema() -> dict[str, Any]:
    """The JSON Schema of check files, with ``visitor`` and ``context`` taken from the API's wire structs."""
    schema = ChecksFile.model_json_schema(by_alias=True)
    parts, components = msgspec.json.schema_components(list(WIRE_PARTS.values()), ref_template="#/$defs/{name}")
    clash = set(components) & set(schema["$defs"])
    assert not clash, f"wire struct names clash with the check file's: {clash}"
    schema["$defs"].update(components)
    test = schema["$defs"]["CheckTest"]["properties"]
    for (key, _), part in zip(WIRE_PARTS.items(), parts, strict=True):
        test[key] = {**part, "description": test[key]["description"]}
    return schema
