"""The public key domain of a differentially private release
(``node.policy.privacy``): its tables, the public values of each dimension,
the keys of every cell, and consecutive numbers for periods."""

from __future__ import annotations

from datetime import date
from itertools import product

from node.errors import PolicyError
from node.model.codes import AGE_BAND_LABELS, SEXES, SUBREGION, iso_week
from node.policy.atoms import dimension_value
from node.policy.flow_rules import FlowStatisticsRules, PeriodType, PrivacyRules

#: A value outside a dimension's public domain (SDMX's "_O", other).
OTHER = "_O"
#: A dimension a table sums over (SDMX's "_T", total).
TOTAL = "_T"
#: Inside a cell key only: the nationality position of a table by region of
#: nationality holds this prefix and the region.
REGION_PREFIX = "_T/"
#: A previous country that is not known (SDMX's "_U").
UNKNOWN = "_U"

#: (nationality, sex, date_of_birth, encounter_date, previous_country), as atoms.FlowInput.
Row = tuple[str, str, date, date, str | None]


def privacy_rules(rules: FlowStatisticsRules) -> PrivacyRules:
    if rules.privacy is None:
        raise PolicyError("flow_statistics: method differential_privacy needs privacy settings")
    return rules.privacy


def tables_of(rules: FlowStatisticsRules) -> list[tuple[str, ...]]:
    """The tables a policy releases, each the dimensions it keeps in the order
    of ``dimensions`` (``nationality_region`` standing where nationality is):
    the policy's ``flow_statistics.tables`` (the detail among them, as the
    model checks), the detail first, then the others from the coarsest (the
    order they are listed in changes nothing); only the detail when it states
    none."""
    order: dict[str, int] = {name: i for i, name in enumerate(rules.dimensions)}
    if "nationality" in order:
        order.setdefault("nationality_region", order["nationality"])
    others = sorted(rules.table_list(), key=lambda t: (len(t), [order[d] for d in t], t))
    return [tuple(rules.dimensions), *others]


def is_region_table(rules: FlowStatisticsRules, table: tuple[str, ...]) -> bool:
    """Whether ``table`` keeps the region of the policy's nationality dimension."""
    return "nationality_region" in table and "nationality_region" not in rules.dimensions


def domain_of(rules: FlowStatisticsRules, dimension: str) -> tuple[str, ...]:
    """The public values of a dimension: the policy's list (with ``_O``, and
    ``_U`` for an unknown previous country), else the code list."""
    declared = {str(k): v for k, v in privacy_rules(rules).domain.items()}.get(dimension)
    if declared is not None:
        extra = [OTHER] + ([UNKNOWN] if dimension == "previous_country" else [])
        return tuple(dict.fromkeys([*declared, *extra]))
    if dimension == "sex":
        return SEXES
    if dimension == "age_band":
        return AGE_BAND_LABELS
    if dimension == "nationality_region":
        return (*sorted(set(SUBREGION.values())), OTHER)
    raise PolicyError(f"flow_statistics.privacy.domain: list the public values of {dimension}")


def public_value(name: str, row: Row, domain: frozenset[str]) -> str:
    raw = dimension_value(name, row)
    return raw if raw in domain else OTHER


def _axes(rules: FlowStatisticsRules, table: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The values of each of the policy's dimensions in one table's cells:
    its public domain where the table keeps it, ``_T`` where it sums over it,
    ``_T/<region>`` in the nationality position of a table by region."""
    by_region = is_region_table(rules, table)
    out: list[tuple[str, ...]] = []
    for name in rules.dimensions:
        if name == "nationality" and by_region:
            regions = domain_of(rules, "nationality_region")
            out.append(tuple(REGION_PREFIX + r for r in regions))
        elif name in table:
            out.append(domain_of(rules, name))
        else:
            out.append((TOTAL,))
    return out


def cell_keys(rules: FlowStatisticsRules) -> list[str]:
    """Every cell of every table, as a key (the policy's dimensions in order,
    ``_T`` where the table sums over one), the detail's first."""
    out: list[str] = []
    for table in tables_of(rules):
        out.extend("|".join(values) for values in product(*_axes(rules, table)))
    return out


def key_dimensions(rules: FlowStatisticsRules, key: str) -> tuple[tuple[str, str], ...]:
    """A cell key as the dimensions a FlowStatistic carries (a table by region
    names nationality_region where the key holds ``_T/<region>``)."""
    out: list[tuple[str, str]] = []
    for name, value in zip(rules.dimensions, key.split("|"), strict=True):
        if value.startswith(REGION_PREFIX):
            out.append(("nationality_region", value[len(REGION_PREFIX) :]))
        else:
            out.append((name, value))
    return tuple(out)


def is_table_key(key: str) -> bool:
    """Whether a cell key is of a table other than the detail (it sums over a
    dimension: the detail's keys hold public values, never ``_T``)."""
    return any(v == TOTAL or v.startswith(REGION_PREFIX) for v in key.split("|"))


# -- periods ---------------------------------------------------------------------------


def period_index(label: str, period: PeriodType) -> int:
    """Consecutive integers for consecutive periods."""
    if period == "iso_week":
        year, week = label.split("-W")
        return (date.fromisocalendar(int(year), int(week), 1).toordinal() - 1) // 7
    if period == "month":
        year, month = label.split("-")
        return int(year) * 12 + int(month) - 1
    year, quarter = label.split("-Q")
    return int(year) * 4 + int(quarter) - 1


def label_of(index: int, period: PeriodType) -> str:
    if period == "iso_week":
        return iso_week(date.fromordinal(index * 7 + 1))
    if period == "month":
        return f"{index // 12}-{index % 12 + 1:02d}"
    return f"{index // 4}-Q{index % 4 + 1}"
