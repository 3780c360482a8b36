"""The versioned, marketer-facing file formats of a bundle (version 1).

Two kinds of files make a bundle:

* rule files (``rules/*.yaml``): segments, placements, experiments and the holdout;
* content files (``content/*.yaml``): variants and their structured content, the
  template each variant renders with, the product catalog and localization settings;
* locale files (``content/locales/<locale>.yaml``): translated strings for templates.

Every model forbids unknown keys so that a typo is an error with a line number,
not a silently ignored setting. The JSON Schemas in ``schema/`` are generated
from these models (``tailor schema``) and a test keeps them in step.
Cross-references (a rule naming a segment, an arm naming a variant) are checked
by the compiler, which sees every file at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from service.core import patterns
from service.core.values import MAX_VERSION_CHARS, aware, parse_duration, parse_semver

SPEC_VERSION = 1
MAX_PLANNED_DAYS = 3650  # an analysis plan of ten years is no plan
MAX_PLANNED_VISITORS = 10**12

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
"""Keys of segments, placements, experiments, arms and variants."""

PATH_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
AttrPath = Annotated[str, Field(pattern=PATH_PATTERN, max_length=200)]
"""A dotted path into nested attributes: ``cart.items``, ``views.electronics_7d``."""

Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]
"""An operand number: a test against NaN could never be true, one against infinity never false."""
Scalar = StrictStr | Number | StrictBool
Count = Annotated[StrictInt, Field(ge=0)]


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _unit_missing(value: Any) -> Any:
    """``older_than: 24``: a number alone is no duration, and "expected text" would not say why."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value:g} has no unit; write a whole number and a unit, e.g. 24h, 30d, 15m, 2w")
    return value


def _percent_sign(value: Any) -> Any:
    """``traffic: 80%``: YAML reads it as text, which "a valid number" would not explain."""
    if isinstance(value, str) and value.strip().endswith("%"):
        raise ValueError(f"write a percent as a number, without '%': {value.strip()[:-1].strip()}")
    return value


def _check_regex(text: str) -> str:
    return patterns.check(text)


UtcTime = Annotated[datetime, AfterValidator(aware)]  # `2027-03-01`, a date, is its midnight in UTC


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    if bounds[0] > bounds[1]:
        low, high = bounds[1], bounds[0]
        raise ValueError(f"write the lower bound first: [{low:g}, {high:g}], not [{high:g}, {low:g}]")
    return bounds


Duration = Annotated[str, BeforeValidator(_unit_missing), AfterValidator(_check_duration)]
Regex = Annotated[str, AfterValidator(_check_regex)]
_SEMVER_NUMBER = r"(0|[1-9][0-9]*)"
_SEMVER_PRE = r"(0|[1-9][0-9]*|[0-9]*[A-Za-z\-][0-9A-Za-z\-]*)"
_SEMVER_BUILD = r"[0-9A-Za-z\-]+"
SEMVER_PATTERN = (
    rf"^v?{_SEMVER_NUMBER}(\.{_SEMVER_NUMBER}){{0,2}}"
    rf"(-{_SEMVER_PRE}(\.{_SEMVER_PRE})*)?(\+{_SEMVER_BUILD}(\.{_SEMVER_BUILD})*)?$"
)
"""Semantic versions as ``parse_semver`` reads them, for editors; the parser itself has the last word."""


def _check_semver(text: str) -> str:
    if parse_semver(text) is None:
        raise ValueError(f"'{text}' is not a semantic version such as 2.3.1 or 2.3.1-beta.1")
    return text


SemVerText = Annotated[str, Field(pattern=SEMVER_PATTERN, max_length=MAX_VERSION_CHARS), AfterValidator(_check_semver)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class Ref(_Model):
    """Compare with another value of the same request instead of a constant."""

    attr: AttrPath | None = Field(None, description="Dotted path into the visitor's attributes.")
    context: AttrPath | None = Field(None, description="Dotted path into the request context.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.attr is None) == (self.context is None):
            raise ValueError("a reference names exactly one of 'attr' or 'context'")
        return self


def _shape(value: Any) -> str:
    """Which member of an operand union a value is: a mapping naming attr or context is a reference."""
    if isinstance(value, dict):
        return "reference" if "attr" in value or "context" in value else "object"
    return "list" if isinstance(value, list) else "value"


_LITERAL_OBJECT = {"type": "object", "not": {"anyOf": [{"required": ["attr"]}, {"required": ["context"]}]}}
Comparable = Annotated[
    Annotated[Number | StrictStr, Tag("value")] | Annotated[Ref, Tag("reference")], Discriminator(_shape)
]
Equatable = Annotated[
    Annotated[Scalar, Tag("value")]
    | Annotated[Ref, Tag("reference")]
    | Annotated[list[JsonValue], Tag("list")]
    | Annotated[dict[str, JsonValue], Tag("object"), WithJsonSchema(_LITERAL_OBJECT)],
    Discriminator(_shape),
]
"""A value, a reference, or a list or object compared item by item; a mapping naming attr or context is a reference."""
Bounds = Annotated[tuple[Number, Number], AfterValidator(_check_bounds)]
TimePoint = Annotated[Annotated[datetime, Tag("value")] | Annotated[Ref, Tag("reference")], Discriminator(_shape)]
Items = Annotated[list[Scalar], Field(min_length=1)]
TypeName = Literal["text", "number", "boolean", "list", "object"]
ItemPath = Literal["."] | AttrPath

OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between",
    "contains", "starts_with", "ends_with", "matches", "exists", "type",
    "any_of", "all_of", "none_of", "some", "every", "length",
    "semver_eq", "semver_gt", "semver_gte", "semver_lt", "semver_lte",
    "before", "after", "within", "older_than",
)  # fmt: skip
GROUPS: tuple[str, ...] = ("all", "any", "not", "segment")
SUBJECTS: tuple[str, ...] = ("attr", "context", "model", "item")
TEXT_OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "matches", "any_of", "all_of", "none_of",
)  # fmt: skip
"""The operators that compare text, and so take ``ignore_case``."""
LENGTH_OPERATORS: tuple[str, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "between")


class LengthTest(_Model):
    """A test of a list's number of items: exactly one of these operators."""

    eq: Count | None = None
    ne: Count | None = None
    gt: Count | None = None
    gte: Count | None = None
    lt: Count | None = None
    lte: Count | None = None
    between: Annotated[tuple[Count, Count], AfterValidator(_check_bounds)] | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        found = [op for op in LENGTH_OPERATORS if getattr(self, op) is not None]
        if len(found) != 1:
            raise ValueError(f"a length test has exactly one of {', '.join(LENGTH_OPERATORS)}, found {_quote(found)}")
        return self

    def operator(self) -> tuple[str, object]:
        """The one operator and its operand."""
        op = next(op for op in LENGTH_OPERATORS if getattr(self, op) is not None)
        return op, getattr(self, op)


class Condition(_Model):
    """One condition: a group (all / any / not), a segment reference, or a test of one value.

    A test names its subject with ``attr`` (visitor attributes), ``context`` (request
    context), ``model`` (a segment model's output) or, inside ``some`` and ``every``,
    ``item`` (the list item), and exactly one operator; ``ignore_case`` may go with a
    text operator. A test on a missing value, or on a value of the wrong type, is false,
    except ``exists: false``.
    """

    all_: list[Condition] | None = Field(
        None, alias="all", min_length=1, description="True when every condition is true."
    )
    any_: list[Condition] | None = Field(None, alias="any", min_length=1, description="True when at least one is true.")
    not_: Condition | None = Field(None, alias="not", description="True when the condition is false.")
    segment: Name | None = Field(None, description="True when the visitor is in this segment.")

    attr: AttrPath | None = Field(None, description="Dotted path into the visitor's attributes.")
    context: AttrPath | None = Field(None, description="Dotted path into the request context (locale, page, ...).")
    model: Name | None = Field(
        None, description="A segment model's output for the visitor: a cluster label, a probability or a value."
    )
    item: ItemPath | None = Field(
        None, description="Inside 'some' or 'every': a dotted path into the list item; '.' is the item itself."
    )

    eq: Equatable | None = Field(
        None, description="Equal, same type (5 never equals '5'); lists and objects item by item."
    )
    ne: Equatable | None = Field(None, description="Of the same type and not equal.")
    in_: Items | None = Field(None, alias="in", description="Equal to one of these.")
    not_in: Items | None = Field(None, description="Of the same type as these and equal to none of them.")
    gt: Comparable | None = Field(None, description="Greater than (numbers with numbers, text with text).")
    gte: Comparable | None = Field(None, description="Greater than or equal.")
    lt: Comparable | None = Field(None, description="Less than.")
    lte: Comparable | None = Field(None, description="Less than or equal.")
    between: Bounds | None = Field(None, description="A number within [low, high], both ends included.")
    contains: Scalar | None = Field(None, description="Text containing this text, or a list containing this item.")
    starts_with: StrictStr | None = Field(None, description="Text starting with this text.")
    ends_with: StrictStr | None = Field(None, description="Text ending with this text.")
    matches: Regex | None = Field(None, description="Text in which this regular expression finds a match.")
    exists: StrictBool | None = Field(None, description="true: the value is present (not null); false: it is absent.")
    type: TypeName | None = Field(None, description="A value of this type: text, number, boolean, list or object.")
    any_of: Items | None = Field(None, description="A list holding at least one of these.")
    all_of: Items | None = Field(None, description="A list holding every one of these.")
    none_of: Items | None = Field(None, description="A list holding none of these (an empty list too).")
    some: Condition | None = Field(None, description="A list with at least one item for which this condition holds.")
    every: Condition | None = Field(
        None, description="A list with at least one item, for every item of which this condition holds."
    )
    length: LengthTest | None = Field(None, description="A list whose number of items passes this test.")
    semver_eq: SemVerText | None = Field(None, description="Semantic version equal to this one.")
    semver_gt: SemVerText | None = Field(None, description="Semantic version greater than this one.")
    semver_gte: SemVerText | None = Field(None, description="Semantic version greater than or equal.")
    semver_lt: SemVerText | None = Field(None, description="Semantic version less than this one.")
    semver_lte: SemVerText | None = Field(None, description="Semantic version less than or equal.")
    before: TimePoint | None = Field(None, description="A time (ISO 8601 or epoch seconds) before this one.")
    after: TimePoint | None = Field(None, description="A time after this one.")
    within: Duration | None = Field(None, description="A time within this long before the request, e.g. 30d.")
    older_than: Duration | None = Field(None, description="A time more than this long before the request, e.g. 24h.")
    ignore_case: StrictBool | None = Field(
        None, description="Compare text without regard to case (with eq, ne, in, not_in, contains, ...)."
    )

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        groups = [name for name, field in _GROUP_FIELDS.items() if getattr(self, field) is not None]
        operators = self.operators()
        subjects = [name for name in SUBJECTS if getattr(self, name) is not None]
        if groups:
            if len(groups) > 1 or operators or subjects:
                extra = [*groups[1:], *subjects, *operators]
                raise ValueError(
                    f"'{groups[0]}' stands alone in its condition; move {_quote(extra)} into a condition of its own"
                )
            return self
        if len(subjects) != 1:
            raise ValueError(
                "a condition is a group (all, any, not), a segment reference, "
                "or a test naming exactly one of 'attr', 'context', 'model' or 'item'"
                if not subjects
                else f"a test names exactly one of 'attr', 'context', 'model' or 'item', not {_quote(subjects)}"
            )
        nulls = [op for op in OPERATORS if _OPERATOR_FIELDS[op] in self.model_fields_set and op not in operators]
        if nulls and not operators:
            absent, text = "for an absent value write 'exists: false'", 'for the text quote "null"'
            raise ValueError(f"'{nulls[0]}' has no value (null): {absent}, {text}")
        if len(operators) != 1:
            raise ValueError(
                f"a test needs exactly one operator, found {_quote(operators)}"
                if operators
                else f"a test needs an operator, one of: {', '.join(OPERATORS)}"
            )
        if self.ignore_case is not None:
            self._check_ignore_case(operators[0])
        return self

    def _check_ignore_case(self, op: str) -> None:
        if op not in TEXT_OPERATORS:
            raise ValueError(f"'ignore_case' goes with a test of text ({', '.join(TEXT_OPERATORS)}), not with '{op}'")
        if isinstance(self.operand(), Ref):
            raise ValueError("'ignore_case' compares with text written in the rule, not with a reference")

    def operators(self) -> list[str]:
        """The operators set on this condition, by their file names."""
        return [op for op in OPERATORS if getattr(self, _OPERATOR_FIELDS[op]) is not None]

    def operand(self) -> object:
        """The value of this test's single operator."""
        return getattr(self, _OPERATOR_FIELDS[self.operators()[0]])


_GROUP_FIELDS = {"all": "all_", "any": "any_", "not": "not_", "segment": "segment"}
_OPERATOR_FIELDS = {op: ("in_" if op == "in" else op) for op in OPERATORS}


def _quote(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) if names else "nothing"


class Segment(_Model):
    """A named set of visitors, defined by a condition over their attributes."""

    description: str = ""
    when: Condition


class Arm(_Model):
    """One arm of an experiment: the variant it serves and its integer weight."""

    key: Name
    variant: Name
    weight: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] = 1  # strict: `true` is no weight


# The constraints before the validator: after one, pydantic checks multiple_of in floats, and 50 fails.
Percent = Annotated[float, Field(ge=0, le=100, multiple_of=0.01), BeforeValidator(_percent_sign)]
AnalysisMode = Literal["fixed", "sequential", "always-valid"]


class AnalysisPlan(_Model):
    """How ``tailor analyze`` tests this experiment (decisions never read it); CLI flags override it."""

    mode: AnalysisMode = Field(
        description="fixed: one look at the end; sequential: group-sequential, one look a day "
        "up to planned_days; always-valid: a confidence sequence, look at any time."
    )
    planned_days: float | None = Field(
        None,
        ge=1,
        le=MAX_PLANNED_DAYS,
        description="Days the test is planned to run (default 14); not with mode fixed.",
    )
    planned_visitors: Annotated[int, Field(ge=2, le=MAX_PLANNED_VISITORS, strict=True)] | None = Field(
        None,
        description="Visitors an always-valid test is planned to reach, the size its confidence sequence is "
        "tightest at, fixed before the first look (default: the visitors so far at the pace so far times "
        "planned_days); only with mode always-valid.",
    )

    @model_validator(mode="after")
    def _plan_shape(self) -> Self:
        if self.mode == "fixed" and self.planned_days is not None:
            raise ValueError("'planned_days' is for a sequential or always-valid plan; a fixed test has none")
        if self.mode != "always-valid" and self.planned_visitors is not None:
            raise ValueError(
                f"'planned_visitors' is for an always-valid plan (it tunes the confidence sequence), "
                f"not a {self.mode} one"
            )
        return self


class Experiment(_Model):
    """An A/B or multivariate test whose arms each serve one variant."""

    description: str = ""
    status: Literal["draft", "running", "stopped"]
    arms: list[Arm] = Field(min_length=1)
    traffic: Percent | None = Field(
        None, description="Percent of eligible visitors who enter (default 100). Not with a layer."
    )
    layer: Name | None = Field(None, description="Experiments in one layer never share a visitor.")
    layer_slice: tuple[Percent, Percent] | None = Field(
        None, description="The part of the layer's visitors this experiment owns, as [from, to) percent."
    )
    bucket_by: AttrPath | None = Field(None, description="Attribute to bucket by; default: the visitor id.")
    salt: str | None = Field(None, min_length=1, max_length=200, description="Hash salt; default: the key.")
    bucket_version: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="Raise it to re-bucket every visitor on purpose; assignments tokens "
        "of an older version are then ignored (docs/adr/0010-assignments-token.md).",
    )
    start: UtcTime | None = None
    end: UtcTime | None = None
    forced: dict[str, Name] = Field(
        default_factory=dict, description="QA visitor ids and the arm each one always gets."
    )
    analysis: AnalysisPlan | None = Field(None, description="The analysis plan; default: a fixed-horizon test.")

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        """At the line of 'end', which is the one to change more often than not."""
        start = info.data.get("start")
        if end is not None and start is not None and start >= end:
            raise ValueError(f"'end' ({end.isoformat()}) must be after 'start' ({start.isoformat()})")
        return end

    @model_validator(mode="after")
    def _layer_shape(self) -> Self:
        if self.layer is None and self.layer_slice is not None:
            raise ValueError("'layer_slice' needs a 'layer'")
        if self.layer is not None:
            if self.traffic is not None:
                raise ValueError("in a layer, 'layer_slice' sets the traffic; remove 'traffic'")
            if self.layer_slice is None:
                raise ValueError("an experiment in a layer needs 'layer_slice: [from, to]'")
            if self.layer_slice[0] >= self.layer_slice[1]:
                raise ValueError("'layer_slice' must go from a lower to a higher percent")
        if sum(arm.weight for arm in self.arms) == 0:
            raise ValueError("at least one arm needs a weight above 0")
        return self


class Rule(_Model):
    """One targeting rule of a placement: who it targets and what it does."""

    name: Name | None = Field(None, description="Shown in traces; default: rules[i].")
    segment: Name | None = Field(None, description="Target this segment.")
    when: Condition | None = Field(None, description="Target visitors matching this inline condition.")
    serve: Name | None = Field(None, description="Serve this variant.")
    experiment: Name | None = Field(None, description="Run this experiment.")

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        if (self.serve is None) == (self.experiment is None):
            raise ValueError("a rule either serves a variant ('serve') or runs an experiment ('experiment')")
        if self.segment is not None and self.when is not None:
            raise ValueError("a rule targets a segment or an inline 'when' condition, not both")
        return self


class Placement(_Model):
    """A slot on a page or in an email; rules are tried in order and the first match wins."""

    description: str = ""
    default: Name = Field(description="The variant served when no rule applies.")
    rules: list[Rule] = Field(default_factory=list)


class Holdout(_Model):
    """A share of visitors who always get defaults, to measure the lift of personalization."""

    percent: Percent
    salt: str = Field("holdout", min_length=1, max_length=200)


class RulesFile(_Model):
    """A rule file: ``rules/*.yaml``."""

    model_config = ConfigDict(title="Tailor rule file, version 1")

    version: Literal[1]
    segments: dict[Name, Segment] = Field(default_factory=dict)
    placements: dict[Name, Placement] = Field(default_factory=dict)
    experiments: dict[Name, Experiment] = Field(default_factory=dict)
    holdout: Holdout | None = None


TemplateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*\.(html|mjml|txt)$", max_length=200)]
"""A file under ``content/templates/``: ``hero.html``, ``email/cart.mjml``."""


class Render(_Model):
    """How a variant renders to HTML: a template, its parameters, and what to show if rendering fails."""

    template: TemplateName = Field(description="A file under content/templates/, e.g. hero.html or email/cart.mjml.")
    params: dict[str, JsonValue] = Field(default_factory=dict, description="Passed to the template as `params`.")
    fallback: str = Field(
        "", max_length=20_000, description="Static HTML served when the template fails at render time."
    )


class Variant(_Model):
    """What a placement shows: structured fields the client renders, and optionally a template."""

    description: str = ""
    content: dict[str, JsonValue] = Field(
        default_factory=dict, description="Headline, image, call to action, ...: passed to the client as is."
    )
    render: Render | None = None


class Product(_Model):
    """One catalog entry for the recommendations block."""

    name: str = Field(min_length=1, max_length=200)
    names: dict[str, str] = Field(default_factory=dict, description="Translated names by locale: {de: ...}.")
    category: Name
    price: Annotated[float, Field(ge=0)]
    url: str = Field(max_length=500)
    image: str = Field("", max_length=500)
    popularity: Annotated[float, Field(ge=0)] = Field(0, description="Breaks ties; ranks visitors without affinity.")


class Recommendations(_Model):
    """Which visitor attributes carry affinities, and how much a purchase counts against a view."""

    views_attribute: AttrPath = "category_views"
    purchases_attribute: AttrPath = "category_purchases"
    purchased_attribute: AttrPath = "purchased_products"
    view_weight: Annotated[float, Field(ge=0)] = 1.0
    purchase_weight: Annotated[float, Field(ge=0)] = 3.0


class Localization(_Model):
    """The bundle's default language and currency; the fallback for every missing translation."""

    default_locale: str = Field("en", pattern=r"^[a-z]{2,3}([_\-][A-Za-z0-9]{2,8})*$")
    default_currency: str = Field("USD", pattern=r"^[A-Z]{3}$")


class ContentFile(_Model):
    """A content file: ``content/*.yaml``."""

    model_config = ConfigDict(title="Tailor content file, version 1")

    version: Literal[1]
    variants: dict[Name, Variant] = Field(default_factory=dict)
    products: dict[Name, Product] = Field(default_factory=dict)
    recommendations: Recommendations | None = None
    localization: Localization | None = None


MessageKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$", max_length=200)]


class LocaleFile(_Model):
    """Translated strings: ``content/locales/<locale>.yaml``. ``{name}`` in a message is a parameter."""

    model_config = ConfigDict(title="Tailor locale file, version 1")

    version: Literal[1]
    messages: dict[MessageKey, Annotated[str, Field(max_length=5_000)]] = Field(default_factory=dict)
