"""Personas: each cluster of a cluster model in figures a marketer can read.

Training writes one profile per cluster into the model card's free-form ``metrics``
(``metrics.personas.<label>``, see docs/models/REPORT.md); the bundle loader reads and
checks them (service/bundle/personas.py), and ``GET /v1/bundle`` and ``tailor simulate``
show them. They describe the training population: serving decides nothing with them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Figure = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Persona(BaseModel):
    """One cluster's profile; its name is the cluster's label, the key it is written under.

    Strict, so a count written as text or a share as ``true`` is an error, not a conversion.
    Unknown keys are ignored: ``metrics`` is the training's free-form record, and a figure a
    later training adds must not make an older server refuse the bundle.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    customers: int = Field(ge=0, description="Customers in the cluster (all customers before the cutoff).")
    share_of_customers: Share
    share_of_spend: Share = Field(description="The cluster's share of all spend before the cutoff.")
    median_recency_days: Figure = Field(description="Days from the last purchase to the cutoff.")
    median_orders: Figure
    median_spend: Figure = Field(description="Dollars spent before the cutoff.")
    median_tenure_days: Figure = Field(description="Days from the first purchase to the cutoff.")
    churn_rate: Share = Field(description="Share of the cluster with no purchase in the forecast horizon.")
    description: str = Field(min_length=1, description="One line generated from the figures.")
