"""The rules of the flow-statistics exchange: period, dimensions, ladders,
margins, tables, minimum cell size, rounding and protection, or differential
privacy instead (``PrivacyRules``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from node.model.codes import is_iso3
from node.policy.use_rules import AUDIENCE_GROUPS, StrictModel, UseRules

FlowDimension = Literal["nationality", "nationality_region", "sex", "age_band", "previous_country"]
#: A dimension a table keeps: one of the policy's, or nationality_region for a
#: policy that publishes nationality (totals per region of nationality).
TableDimension = FlowDimension
PeriodType = Literal["iso_week", "month", "quarter"]
#: Ladders a small cell may climb before it is suppressed ("coarsen before suppress").
CoarsenLadder = Literal["period", "nationality"]


#: How a flow-statistics exchange protects small counts (``node.policy.privacy``).
FlowMethod = Literal["suppression", "differential_privacy"]


class PrivacyRules(StrictModel):
    """Differential privacy for one flow-statistics exchange: every count gets
    calibrated integer noise (OpenDP's discrete Laplace) instead of being
    suppressed. ``epsilon_per_release`` is what one period's measurement costs
    every audience (its later revisions included, up to ``revisions``);
    ``budget`` is the total privacy loss each audience may accumulate on any
    one period (periods are disjoint, so they compose in parallel)."""

    mechanism: Literal["discrete_laplace"] = "discrete_laplace"
    epsilon_per_release: float = Field(gt=0, le=10)
    budget: dict[str, float] = Field(
        description="Audience -> the privacy-loss budget (epsilon) it may accumulate."
    )
    revisions: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Releases of a period (one per period of age) sharing one measurement, "
        "by a binary-tree counter; later records are not counted.",
    )
    domain: dict[FlowDimension, list[str]] = Field(
        default_factory=dict,
        description="The public values of a dimension; a value outside them counts as "
        "'_O' (other). Needed for nationality and previous_country.",
    )

    @field_validator("budget")
    @classmethod
    def _budgets(cls, value: dict[str, float]) -> dict[str, float]:
        for audience, eps in value.items():
            if audience not in AUDIENCE_GROUPS and not is_iso3(audience):
                raise ValueError(f"unknown audience {audience!r}")
            if not eps > 0:
                raise ValueError(f"{audience}: a budget is a positive epsilon")
        return value


class FlowStatisticsRules(UseRules):
    """Counts of encounters by period and dimensions, small cells suppressed.

    ``margins`` lists the totals the country publishes elsewhere (its statistics
    office's tables) or the Secretariat may publish: each is a set of dimensions,
    ``[]`` being the period total. Complementary suppression makes sure no
    suppressed cell can be recovered from those totals and the published cells.
    """

    period: PeriodType = "iso_week"
    dimensions: list[FlowDimension] = Field(min_length=1)
    min_cell_size: int = Field(ge=1, le=1000)
    coarsen: list[CoarsenLadder] = Field(
        default_factory=list,
        description="Ladders a small cell climbs before it is suppressed, in order.",
    )
    secondary_suppression: Literal["none", "complementary"] = "complementary"
    margins: list[list[FlowDimension]] = Field(default_factory=list)
    rounding: int = Field(
        default=1, ge=1, le=100, description="Publish counts rounded to this base; 1 = exact."
    )
    protection: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Width every hidden count's feasible interval keeps, given every "
        "release, margin and exchange its audience sees; min_cell_size if absent.",
    )
    tables: list[list[TableDimension]] | None = Field(
        default=None,
        description="The tables released, each a list of the dimensions it keeps "
        "(``[]`` the period total; the dimensions themselves the detail, which must be "
        "listed); a cell of a table carries _T in the dimensions it sums over. Only the "
        "detail if absent.",
    )

    method: FlowMethod = Field(
        default="suppression",
        description="suppression (small cells hidden) or differential_privacy (every "
        "count noisy; see privacy).",
    )
    privacy: PrivacyRules | None = None

    @field_validator("dimensions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("dimensions are listed more than once")
        if "nationality" in value and "nationality_region" in value:
            raise ValueError("nationality and nationality_region cannot both be dimensions")
        return value

    @model_validator(mode="after")
    def _ladders_and_margins(self) -> FlowStatisticsRules:
        if len(set(self.coarsen)) != len(self.coarsen):
            raise ValueError("coarsen: a ladder is listed more than once")
        if "nationality" in self.coarsen and "nationality" not in self.dimensions:
            raise ValueError("coarsen: nationality is not a dimension, so it cannot be coarsened")
        if "period" in self.coarsen and self.period == "quarter":
            raise ValueError("coarsen: quarter is the top of the period ladder")
        for i, margin in enumerate(self.margins):
            extra = set(margin) - set(self.dimensions)
            if extra:
                raise ValueError(f"margins[{i}]: {sorted(extra)} not among the dimensions")
        if self.margins and self.secondary_suppression == "none":
            raise ValueError(
                "margins are published but secondary_suppression is none: a suppressed "
                "cell could be recovered from them"
            )
        if self.rounding > self.min_cell_size:
            raise ValueError("rounding: the base must not exceed min_cell_size")
        self._privacy_settings()
        self._check_tables()
        return self

    def _privacy_settings(self) -> None:
        if self.method != "differential_privacy":
            if self.privacy is not None:
                raise ValueError("privacy: applies only to method differential_privacy")
            return
        if self.privacy is None:
            raise ValueError(
                "method differential_privacy needs privacy: {epsilon_per_release, budget}"
            )
        if self.coarsen or self.rounding > 1:
            raise ValueError("differential_privacy: coarsen and rounding do not apply; remove them")
        missing = [a for a in self.audiences if a not in self.privacy.budget]
        if missing:
            raise ValueError(f"privacy.budget: no budget for audience(s) {missing}")
        for audience, eps in self.privacy.budget.items():
            if eps < self.privacy.epsilon_per_release:
                raise ValueError(
                    f"privacy.budget.{audience}: {eps} is less than one release "
                    f"(epsilon_per_release {self.privacy.epsilon_per_release})"
                )
        for dim in ("nationality", "previous_country"):
            if dim in self.dimensions and dim not in self.privacy.domain:
                raise ValueError(f"privacy.domain: list the public values of {dim}")

    def _check_tables(self) -> None:
        if self.tables is None:
            return
        dims = set(self.dimensions)
        seen: dict[frozenset[str], int] = {}
        for i, table in enumerate(self.tables):
            where = f"tables[{i}]"
            if len(set(table)) != len(table):
                raise ValueError(f"{where}: a dimension is listed more than once")
            kept = set(table)
            if "nationality_region" in kept and "nationality_region" not in dims:
                if "nationality" not in dims:
                    raise ValueError(
                        f"{where}: nationality_region needs nationality or "
                        "nationality_region among the dimensions"
                    )
                if "nationality" in kept:
                    raise ValueError(
                        f"{where}: nationality and nationality_region cannot both be kept"
                    )
                if kept - {"nationality_region"} == dims - {"nationality"}:
                    raise ValueError(
                        f"{where}: the detail by region of nationality is the detail "
                        "coarsened: use coarsen: [nationality] instead"
                    )
                kept = (kept - {"nationality_region"}) | {"nationality"}
            extra = kept - dims
            if extra:
                raise ValueError(
                    f"{where}: {sorted(extra)} not among the dimensions {self.dimensions}"
                )
            key = frozenset(table)
            if key in seen:
                raise ValueError(f"{where}: the same table as tables[{seen[key]}]")
            seen[key] = i
        if frozenset(self.dimensions) not in seen:
            raise ValueError(
                f"tables: list the detail {self.dimensions} too (the finest table is the "
                "policy's dimensions; to publish less detail, drop dimensions)"
            )
        if (
            len(self.tables) > 1
            and self.secondary_suppression == "none"
            and self.method != "differential_privacy"  # nothing is suppressed
        ):
            raise ValueError(
                "tables are published but secondary_suppression is none: a suppressed "
                "cell could be recovered from a table"
            )

    def table_list(self) -> list[tuple[str, ...]]:
        """The tables other than the detail, each as the dimensions it keeps in the
        order of ``dimensions`` (nationality_region standing for nationality)."""
        order: dict[str, int] = {name: i for i, name in enumerate(self.dimensions)}
        if "nationality" in order:
            order.setdefault("nationality_region", order["nationality"])
        out: list[tuple[str, ...]] = []
        for table in self.tables or ():
            if set(table) == set(self.dimensions):
                continue
            out.append(tuple(sorted(table, key=lambda d: order[d])))
        return out

    def output_fields(self) -> frozenset[str]:
        """The FlowStatistic body fields this policy lets carry a value."""
        fields = {"reporting_country", "period", "period_type", "count", "obs_status"}
        fields |= set(self.dimensions)
        if self.method == "differential_privacy":
            fields |= {"ci95_low", "ci95_high", "noise_mechanism", "noise_scale", "epsilon"}
        if "nationality" in self.coarsen or any(
            "nationality_region" in t for t in self.tables or ()
        ):
            fields.add("nationality_region")
        return frozenset(fields)
