"""Wire structs ↔ core types: request limits, the request's time, and response building."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.assignments import TokenStatus
from service.bundle.store import Loaded
from service.core.bucketing import HASH_VERSION
from service.core.compile import Bundle, CompiledExperiment, CompiledPlacement
from service.core.decide import NO_STICKY, Decision, DecisionRequest
from service.core.errors import Problem, RequestError, format_path
from service.core.models import CompiledModel
from service.core.personas import Persona
from service.core.rendering import Rendered
from service.core.whynot import WhyNot, format_why_not
from service.http import wire
from service.settings import Settings

CLIENT_TIME_REFUSED = (
    "a client time is accepted only when the server allows it (TAILOR_ALLOW_CLIENT_TIME) or with the admin token"
)


def to_core(
    data: wire.DecideRequest,
    settings: Settings,
    clock: Callable[[], datetime],
    *,
    client_time: bool,
    sticky: Mapping[str, tuple[str, int]] | None = None,
) -> DecisionRequest:
    """Check the request against the limits and turn it into the core's request.

    ``client_time``: may this request decide as of a time it names (``context.now``)? A time
    moves a visitor into an experiment's window or past a trigger, so not every client may.
    """
    if data.placements is not None and len(data.placements) > settings.max_placements:
        raise RequestError(f"at most {settings.max_placements} placements per request", "$.placements")
    if data.context.now is not None and not client_time:
        raise RequestError(CLIENT_TIME_REFUSED, "$.context.now")
    check_attributes(data.visitor.attributes, settings)
    return DecisionRequest(
        visitor_id=data.visitor.id,
        attributes=data.visitor.attributes,
        now=_now(data.context, clock),
        context=_context(data.context),
        personalization=data.visitor.consent.personalization,
        placements=data.placements,
        explain=data.explain,
        sticky=sticky or NO_STICKY,
    )


def check_batch(data: wire.RenderRequest, settings: Settings, *, client_time: bool) -> None:
    """A render request names placements or a block (not both), within the batch limit."""
    if (data.placements is None) == (data.block is None):
        raise RequestError("name either 'placements' to decide or one 'block' to render, not both", "$")
    if len(data.recipients) > settings.max_batch:
        raise RequestError(f"at most {settings.max_batch} recipients per request", "$.recipients")
    if data.placements is not None and len(data.placements) > settings.max_placements:
        raise RequestError(f"at most {settings.max_placements} placements per request", "$.placements")
    if not client_time:
        _refuse_client_times(data)
    for index, recipient in enumerate(data.recipients):  # all of them before the first result streams out
        try:
            check_attributes(recipient.attributes, settings)
        except RequestError as exc:
            raise RequestError(exc.message, exc.where.replace("$.visitor", f"$.recipients[{index}]", 1)) from None


def _refuse_client_times(data: wire.RenderRequest) -> None:
    if data.context.now is not None:
        raise RequestError(CLIENT_TIME_REFUSED, "$.context.now")
    for index, recipient in enumerate(data.recipients):
        if recipient.context is not None and recipient.context.now is not None:
            raise RequestError(CLIENT_TIME_REFUSED, f"$.recipients[{index}].context.now")


def recipient_to_core(data: wire.RenderRequest, index: int, clock: Callable[[], datetime]) -> DecisionRequest:
    """One recipient of a batch (checked by ``check_batch``) as a decision request.

    The recipient's context fields override the batch's.
    """
    recipient = data.recipients[index]
    ctx = data.context if recipient.context is None else _merged(data.context, recipient.context)
    return DecisionRequest(
        visitor_id=recipient.id,
        attributes=recipient.attributes,
        now=_now(ctx, clock),
        context=_context(ctx),
        personalization=recipient.consent.personalization,
        placements=data.placements or (),
        explain=data.explain,
    )


def _merged(base: wire.Context, override: wire.Context) -> wire.Context:
    return wire.Context(
        locale=override.locale or base.locale,
        page=override.page or base.page,
        now=override.now or base.now,
        currency=override.currency or base.currency,
    )


def _now(ctx: wire.Context, clock: Callable[[], datetime]) -> datetime:
    return clock() if ctx.now is None else ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)


def _context(ctx: wire.Context) -> dict[str, Any]:
    context = {"locale": ctx.locale, "page": ctx.page, "currency": ctx.currency}
    return {k: v for k, v in context.items() if v is not None}


def check_attributes(attributes: dict[str, Any], settings: Settings) -> None:
    """Refuse attributes that are too many, too deep or too long, saying where."""
    if not _fits(attributes, 1, [settings.max_attributes], settings):  # a batch checks every recipient's
        _check(attributes, "$.visitor.attributes", 1, [settings.max_attributes], settings)  # says where


def _fits(value: Any, depth: int, budget: list[int], settings: Settings) -> bool:
    """``_check`` without the paths it names: only a refused value is walked again, for its place."""
    if depth > settings.max_attribute_depth:
        return False
    items = value.values() if type(value) is dict else value
    budget[0] -= len(items)
    if budget[0] < 0:
        return False
    limit = settings.max_text_length
    for item in items:
        kind = type(item)
        if kind is str:
            if len(item) > limit:
                return False
        elif (kind is dict or kind is list) and not _fits(item, depth + 1, budget, settings):
            return False
    return True


def _check(value: Any, where: str, depth: int, budget: list[int], settings: Settings) -> None:
    if depth > settings.max_attribute_depth:
        raise RequestError(f"attributes nest deeper than {settings.max_attribute_depth} levels", where)
    items = value.items() if type(value) is dict else enumerate(value)
    for key, item in items:
        budget[0] -= 1
        here = f"{where}.{key}" if type(value) is dict else f"{where}[{key}]"
        if budget[0] < 0:
            raise RequestError(f"more than {settings.max_attributes} attribute values", "$.visitor.attributes")
        kind = type(item)
        if kind is str and len(item) > settings.max_text_length:
            raise RequestError(f"text longer than {settings.max_text_length} characters", here)
        if kind is dict or kind is list:
            _check(item, here, depth + 1, budget, settings)


def decision_response(
    bundle: Bundle,
    decision: Decision,
    decision_id: str,
    rendered: Mapping[str, Rendered] | None = None,
    explain: bool = False,
) -> wire.DecideResponse:
    placements = placements_out(bundle, decision, rendered or {}, explain)
    trace = None
    if decision.trace is not None:
        trace = [
            wire.TraceOut(step.placement, step.rule, step.outcome, why_not_out(step.why_not)) for step in decision.trace
        ]
    return wire.DecideResponse(bundle.revision, decision_id, decision.segments, placements, trace, decision.scores)


def why_not_out(why: WhyNot | None) -> wire.WhyNotOut | None:
    if why is None:
        return None
    return wire.WhyNotOut(
        text=format_why_not(why),
        file=why.file,
        line=why.line,
        path=format_path(why.path),
        operator=why.operator,
        expected=why.expected,
        source=why.source,
        name=why.name,
        actual=why.actual,
        missing=why.missing,
        reference=why.reference,
        ignore_case=why.ignore_case,
        via=list(why.via),
    )


def with_token(response: wire.DecideResponse, token: str | None, status: TokenStatus | None) -> wire.DecideResponse:
    """The response with the visitor's new assignments token and what became of the one sent."""
    if token is None and status is None:
        return response
    return msgspec.structs.replace(response, assignments_token=token, assignments_token_status=status)


def placements_out(
    bundle: Bundle, decision: Decision, rendered: Mapping[str, Rendered], explain: bool, content: bool = True
) -> dict[str, wire.PlacementOut]:
    variants = bundle.variants
    placements = {}
    for name, placed in decision.placements.items():
        variant = placed.variant
        assignment = placed.experiment
        block = rendered.get(name)
        placements[name] = wire.PlacementOut(
            variant=variant,
            reason=placed.reason,
            content=None if variant is None or not content else dict(variants[variant].content),
            rule=placed.rule,
            experiment=None
            if assignment is None
            else wire.ExperimentOut(assignment.key, assignment.arm, assignment.bucket, assignment.sticky),
            **({} if block is None else _rendered_fields(block, explain)),
        )
    return placements


def block_out(variant: str, block: Rendered, explain: bool) -> wire.PlacementOut:
    """A block rendered by name (``/v1/render`` with ``block``): no decision, so no rule or experiment."""
    return wire.PlacementOut(variant=variant, reason="requested", **_rendered_fields(block, explain))


def _rendered_fields(block: Rendered, explain: bool) -> dict[str, Any]:
    return {
        "html": block.html,
        "render_status": block.status,
        "render_error": block.error,
        "render_detail": block.detail if explain else None,
    }


def bundle_info(loaded: Loaded, last_problems: tuple[Problem, ...]) -> wire.BundleInfo:
    bundle = loaded.bundle
    return wire.BundleInfo(
        revision=bundle.revision,
        loaded_at=loaded.loaded_at,
        hash_version=HASH_VERSION,
        placements=[_placement_info(p) for p in bundle.placements.values()],
        segments=[
            wire.SegmentInfo(name, text, sorted(bundle.segment_models.get(name, ())))
            for name, text in bundle.segment_descriptions.items()
        ],
        experiments=[_experiment_info(e) for e in bundle.experiments.values()],
        models=[_model_info(m) for m in bundle.models.values()],
        holdout_percent=None if bundle.holdout is None else bundle.holdout.percent,
        warnings=[problem_out(p) for p in bundle.warnings],
        last_load_errors=[problem_out(p) for p in last_problems],
    )


def _placement_info(placement: CompiledPlacement) -> wire.PlacementInfo:
    rules = [
        wire.RuleOut(
            name=rule.label,
            target=rule.describe,
            serve=rule.serve,
            experiment=None if rule.experiment is None else rule.experiment.key,
        )
        for rule in placement.rules
    ]
    return wire.PlacementInfo(placement.name, placement.description, placement.default, rules)


def _experiment_info(experiment: CompiledExperiment) -> wire.ExperimentInfo:
    return wire.ExperimentInfo(
        key=experiment.key,
        description=experiment.description,
        status=experiment.status,
        traffic_percent=experiment.traffic_percent,
        arms=[wire.ArmInfo(arm.key, arm.variant, arm.weight) for arm in experiment.arms],
        layer=experiment.layer,
        bucket_by=experiment.bucket_by,
        start=_from_epoch(experiment.start),
        end=_from_epoch(experiment.end),
        forced_visitors=len(experiment.forced),
        bucket_version=experiment.bucket_version,
    )


def _model_info(model: CompiledModel) -> wire.ModelInfo:
    card = model.card
    return wire.ModelInfo(
        name=card.name,
        kind=card.kind,
        model_version=card.model_version,
        description=card.description,
        output=card.output.kind,
        inputs=[wire.FeatureInfo(f.name, f.unit, f.description) for f in card.inputs],
        labels=sorted((card.output.labels or {}).values()),
        personas=[_persona_info(name, p) for name, p in model.personas.items()],
    )


def _persona_info(name: str, persona: Persona) -> wire.PersonaInfo:
    # the wire struct has the card's fields and the name: a figure added to one and not the other fails here
    return wire.PersonaInfo(name=name, **persona.model_dump())


def _from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def problem_out(problem: Problem) -> wire.ProblemOut:
    return wire.ProblemOut(problem.file, problem.line, format_path(problem.path), problem.message, problem.severity)
