"""SDMX that loads with its structure (issue 16).

The SDMX-ML 3.0 structure message (dataflow, DSD, code lists; version 1.0.0)
is written by pysdmx, shipped in docs/sdmx/, and printed by ``report
--format sdmx-structure``. Two independent SDMX libraries, ``sdmx1`` and
``pysdmx``, load it, read the SDMX-CSV 2.0 export against it and write it back.
Statuses map to OBS_STATUS / CONF_STATUS; protected cells are flagged only for
audiences that may know a cell exists; withdrawals are ``D`` actions; an
audience nothing was released to gets a refusal, not an empty file."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner, Result

from node.aggregator.apply import Aggregator
from node.cli import main
from node.config import Home
from node.crypto.signing import SigningKey
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member import corrections
from node.member.drain import drain_outbox
from node.member.event_factory import FLOW_KIND, EventFactory
from node.member.flow_release import prepare_flow_events
from node.member.member_home import home_policy
from node.member.reference_pipeline import plan_with_reference
from node.report.audience import Scope
from node.report.regional import FlowCell, admitted_cells
from node.report.sdmx import COLUMNS, DATAFLOW, flows_sdmx_csv, sdmx_csv
from node.report.sdmx_observations import Observation, observations
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data
from tests.picture_data import build_picture

SHIPPED = Path(__file__).parent.parent / "docs" / "sdmx" / "RCM_DF_EXTRAREGIONAL_FLOWS_1.0.0.xml"
#: The fixed federation's day (tests/test_picture_views.py): nothing has expired.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DIMS = ("REF_AREA", "CITIZENSHIP", "CITIZENSHIP_REGION", "TIME_PERIOD")


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return build_picture(tmp_path_factory.mktemp("sdmx-picture"))


def _report(home: Home, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home.path), "report", *args])


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _sdmx1_flow(path: Path) -> Any:

    return _sdmx1_structure(path).dataflow["DF_EXTRAREGIONAL_FLOWS"]


def _sdmx1_structure(path: Path) -> Any:
    import sdmx

    # From bytes: sdmx1 given a path leaves the file open.
    return sdmx.read_sdmx(io.BytesIO(path.read_bytes()), format="XML")


def _sdmx1_read(text: str, flow: Any) -> dict[str, dict[tuple[str, ...], tuple[Any, ...]]]:
    """action -> key -> (value, attributes) as sdmx1 reads the CSV with the structure."""
    from sdmx.reader.csv import Reader

    msg = Reader().convert(io.BytesIO(text.encode()), structure=flow)
    out: dict[str, dict[tuple[str, ...], tuple[Any, ...]]] = {}
    for ds in msg.data:
        got = out.setdefault(ds.action.name, {})
        for o in ds.obs:
            key = tuple(str(o.dimension[d].value) for d in DIMS)
            assert key not in got, f"duplicate key {key}"
            attrs = {k: str(v.value) for k, v in o.attached_attribute.items()}
            got[key] = (str(o.value), tuple(sorted(attrs.items())))
    return out


def _expected(text: str) -> dict[str, dict[tuple[str, ...], tuple[Any, ...]]]:
    """The same, read from the CSV by hand (our own reading of the columns)."""
    names = {"I": "information", "D": "delete"}
    attrs = [c for c in COLUMNS[3:] if c not in (*DIMS, "OBS_VALUE")]
    out: dict[str, dict[tuple[str, ...], tuple[Any, ...]]] = {}
    for r in _rows(text):
        out.setdefault(names[r["ACTION"]], {})[tuple(r[d] for d in DIMS)] = (
            r["OBS_VALUE"],
            tuple(sorted((a, r[a]) for a in attrs)),
        )
    return out


# -- the structure message -------------------------------------------------------------


def test_the_structure_message_is_shipped_printed_valid_and_loads_in_both_libraries(
    picture: Home, tmp_path: Path
) -> None:
    from pysdmx.io import read_sdmx

    printed = _report(picture, "regional", "--format", "sdmx-structure")
    assert printed.exit_code == 0, printed.output
    assert printed.output == SHIPPED.read_text(encoding="utf-8"), (
        "docs/sdmx/ is stale: corredor report regional --format sdmx-structure -o "
        f"{SHIPPED.relative_to(SHIPPED.parents[2])}"
    )
    # pysdmx validates it against the SDMX-ML 3.0 schemas and models it.
    msg = read_sdmx(SHIPPED, validate=True)
    (flow,) = msg.get_dataflows()
    assert (flow.agency, flow.id, flow.version) == ("RCM", "DF_EXTRAREGIONAL_FLOWS", "1.0.0")
    (dsd,) = msg.get_data_structure_definitions()
    assert dsd.version == "1.0.0"
    assert [c.id for c in dsd.components.dimensions] == list(DIMS)
    assert [c.id for c in dsd.components.measures] == ["OBS_VALUE"]
    lists = {cl.id: {c.id for c in cl.items} for cl in msg.get_codelists()}
    assert {"_T", "_Z", "_U", "PAN", "CHN", "HTI"} <= lists["CL_AREA"]
    assert {"_Z", "030", "029"} <= lists["CL_M49_REGION"]
    assert lists["CL_OBS_STATUS"] == {"A", "E", "Q"}
    assert lists["CL_CONF_STATUS"] == {"F", "A", "C", "D"}
    assert lists["CL_VALUE_STATUS"] == {"exact", "rounded", "noisy", "lower-bound", "suppressed"}
    # sdmx1 (a second, independent implementation) reads the same structure.
    smsg = _sdmx1_structure(SHIPPED)
    sflow = smsg.dataflow["DF_EXTRAREGIONAL_FLOWS"]
    assert sflow.version == "1.0.0" and sflow.structure.id == "DSD_EXTRAREGIONAL_FLOWS"
    assert [d.id for d in sflow.structure.dimensions] == list(DIMS)
    assert "_T" in smsg.codelist["CL_AREA"] and "_Z" in smsg.codelist["CL_AREA"]
    assert f"{sflow.maintainer.id}:{sflow.id}({sflow.version})" == DATAFLOW


# -- the data, loaded with the structure, round-tripped ----------------------------------


def test_sdmx1_and_pysdmx_load_the_export_with_its_structure_and_round_trip(
    picture: Home, tmp_path: Path
) -> None:
    import sdmx
    from pysdmx.io import get_datasets
    from pysdmx.io.csv.sdmx20.writer import write
    from pysdmx.model import Schema

    result = _report(picture, "regional", "--format", "sdmx", "--audience", "TS")
    assert result.exit_code == 0, result.output
    text = result.output
    rows = _rows(text)
    assert rows and all(r[d] for r in rows for d in DIMS), "no dimension is ever empty"
    assert {r["UNIT_MEASURE"] for r in rows} == {"ENC"}
    # sdmx1: every observation, with its key, value and attributes, as written.
    flow = _sdmx1_flow(SHIPPED)
    assert _sdmx1_read(text, flow) == _expected(text)
    # sdmx1 writes it back as SDMX-CSV 2.0 (its to_csv's str form is a table
    # for the eye, so through its DataFrame); read again, it is the same data
    # (sdmx1 writes the integer counts as floats: 12.0).
    import pandas as pd

    msg = sdmx.reader.csv.Reader().convert(io.BytesIO(text.encode()), structure=flow)
    # with rtype=DataFrame, to_csv's None | str | DataFrame is the DataFrame
    frame = cast(pd.DataFrame, sdmx.to_csv(msg.data[0], rtype=pd.DataFrame, attributes="o"))
    again = frame.to_csv(index=False)
    assert again.splitlines()[0].split(",") == list(COLUMNS)

    def as_int(read: dict[tuple[str, ...], tuple[Any, ...]]) -> dict[Any, Any]:
        return {k: (int(float(v)), a) for k, (v, a) in read.items()}

    assert as_int(_sdmx1_read(again, flow)["information"]) == as_int(_expected(text)["information"])
    # pysdmx: the CSV with the structure message gives typed columns ...
    data = tmp_path / "flows.csv"
    data.write_text(text, encoding="utf-8")
    (ds,) = get_datasets(data, SHIPPED)
    assert isinstance(ds.structure, Schema)  # the structure message's, not just its URN
    assert ds.structure.short_urn == "Dataflow=RCM:DF_EXTRAREGIONAL_FLOWS(1.0.0)"
    assert [c.id for c in ds.structure.components.dimensions] == list(DIMS)
    assert str(ds.data["OBS_VALUE"].dtype).startswith("int")
    assert len(ds.data) == len(rows)
    # ... and written back by pysdmx against that structure, reads as the same rows.
    back = write([ds])
    assert isinstance(back, str)

    def norm(rs: list[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
        return sorted(tuple(sorted((k, v) for k, v in r.items() if k != "ACTION")) for r in rs)

    assert norm(_rows(back)) == norm(rows)


# -- statuses -> SDMX codes, and who may see a protected cell -----------------------------


@dataclass(frozen=True)
class StatusCell(FlowCell):
    """A flow cell with the status fields of issue 16's contract."""

    status: str = "exact"
    ci95: tuple[int, int] | None = None
    protected: int | None = None
    conf: str = "confidential"


def _cell(country: str, nat: str, n: int | None, prev: str | None = None, **kw: Any) -> FlowCell:
    return StatusCell("2024-W03", "ISO_WEEK", country, nat, None, prev, n or 0, False, **kw)


def test_each_status_has_its_sdmx_codes_and_protected_cells_reach_only_who_may_know() -> None:
    cells = [
        _cell("PAN", "CHN", 40),
        _cell("PAN", "HTI", 30, status="noisy", ci95=(22, 38)),
        _cell("PAN", "IND", 20, status="rounded"),
        _cell("CRI", "CHN", 11, status="lower-bound", protected=3),
        _cell("CRI", "HTI", None, status="suppressed", conf="primary"),
        _cell("CRI", "IND", None, status="suppressed", conf="secondary"),
    ]
    flow = _sdmx1_flow(SHIPPED)
    by_audience: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for audience in ("TS", "MEX", "public", "IOM"):
        text = flows_sdmx_csv(cells, audience)
        assert _sdmx1_read(text, flow) == _expected(text)  # loads with its structure
        by_audience[audience] = {(r["REF_AREA"], r["CITIZENSHIP"]): r for r in _rows(text)}
    ts = by_audience["TS"]
    codes = {
        k: (r["OBS_VALUE"], r["OBS_STATUS"], r["CONF_STATUS"], r["VALUE_STATUS"])
        for k, r in ts.items()
    }
    assert codes[("PAN", "CHN")] == ("40", "A", "F", "exact")
    assert codes[("PAN", "HTI")] == ("30", "E", "F", "noisy")
    assert (ts[("PAN", "HTI")]["CI95_LOWER"], ts[("PAN", "HTI")]["CI95_UPPER"]) == ("22", "38")
    assert codes[("PAN", "IND")] == ("20", "E", "F", "rounded")
    assert codes[("CRI", "CHN")] == ("11", "E", "F", "lower-bound")
    assert ts[("CRI", "CHN")]["PROTECTED"] == "3"
    assert codes[("CRI", "HTI")] == ("", "Q", "A", "suppressed")
    assert codes[("CRI", "IND")] == ("", "Q", "D", "suppressed")
    # Regional totals: the shown country values only; a protected country makes
    # the total a lower bound; COUNTRIES names whom it sums.
    assert (
        ts[("_T", "HTI")]["OBS_VALUE"],
        ts[("_T", "HTI")]["VALUE_STATUS"],
        ts[("_T", "HTI")]["COUNTRIES"],
    ) == ("30", "lower-bound", "PAN")
    assert (ts[("_T", "CHN")]["OBS_VALUE"], ts[("_T", "CHN")]["COUNTRIES"]) == ("51", "PAN CRI")
    assert by_audience["MEX"].keys() == ts.keys()  # a member may know a cell exists
    for outsider in ("public", "IOM"):
        seen = by_audience[outsider]
        assert ("CRI", "HTI") not in seen and ("CRI", "IND") not in seen
        assert {r["OBS_STATUS"] for r in seen.values()} <= {"A", "E"}
        assert {r["CONF_STATUS"] for r in seen.values()} == {"F"}
        assert seen[("CRI", "CHN")]["PROTECTED"] == ""
        assert ("_T", "HTI") in seen and seen[("_T", "HTI")]["OBS_VALUE"] == "30"
        # Not even the regional total's status hints at CRI's protected HTI cell.
        assert seen[("_T", "HTI")]["VALUE_STATUS"] == "noisy"


def test_a_published_total_is_used_and_its_detail_never_added_to_it() -> None:
    # PAN published week x nationality (prev None) and the detail by previous
    # country below it; CRI published only the detail for HTI, with a
    # nationality table beside it: its HTI is a lower bound.
    cells = [
        _cell("PAN", "CHN", 100),
        _cell("PAN", "CHN", 60, prev="COL"),
        _cell("PAN", "CHN", 25, prev="ECU"),
        _cell("CRI", "CHN", 90),
        _cell("CRI", "HTI", 12, prev="PAN"),
        _cell("GTM", "VEN", 7, prev="MEX"),
        _cell("GTM", "VEN", 8, prev="HND"),
        _cell("GTM", "_T", 15),
    ]
    got = {(o.area, o.citizenship): o for o in observations(cells)}
    assert got[("PAN", "CHN")].value == 100 and got[("PAN", "CHN")].status == "exact"
    assert got[("CRI", "HTI")].value == 12 and got[("CRI", "HTI")].status == "lower-bound"
    # GTM published no nationality table (only its national total): its detail
    # sums are all it has, and nothing says a nationality's total was hidden.
    assert got[("GTM", "VEN")].value == 15 and got[("GTM", "VEN")].status == "exact"
    assert got[("GTM", "_T")].value == 15
    assert got[("_T", "CHN")].value == 190
    assert got[("_T", "CHN")].countries == ("PAN", "CRI")  # corridor order, south first


def test_a_country_total_says_how_many_encounters_are_in_protected_cells() -> None:
    # PAN's national total (nationality _T) is 100; its published nationality
    # cells account for 85: 15 encounters are in cells it protected. That is
    # shown to TS and members (both numbers are theirs already), not the public.
    cells = [
        _cell("PAN", "_T", 100),
        _cell("PAN", "CHN", 60),
        _cell("PAN", "HTI", 25),
        _cell("CRI", "_T", 40),
        _cell("CRI", "CHN", 40),
        _cell("GTM", "_T", 50),
        _cell("GTM", "VEN", 20, status="rounded"),
        StatusCell("2024-W03", "ISO_WEEK", "MEX", None, "_T", None, 70, False),
    ]
    got = {(o.area, o.citizenship): o for o in observations(cells)}
    assert got[("PAN", "_T")].protected == 15 and got[("PAN", "_T")].status == "exact"
    assert got[("CRI", "_T")].protected is None  # nothing protected
    assert got[("GTM", "_T")].protected is None  # a rounded part: no honest difference
    assert got[("_T", "_T")].value == 260 and got[("_T", "_T")].protected == 15
    ts = {(r["REF_AREA"], r["CITIZENSHIP"]): r for r in _rows(flows_sdmx_csv(cells, "TS"))}
    assert ts[("PAN", "_T")]["PROTECTED"] == "15"
    # A total over regions of nationality is a _T too, not a region named "_T".
    assert (ts[("MEX", "_T")]["CITIZENSHIP_REGION"], ts[("MEX", "_T")]["OBS_VALUE"]) == ("_Z", "70")
    public = {(r["REF_AREA"], r["CITIZENSHIP"]): r for r in _rows(flows_sdmx_csv(cells, "public"))}
    assert public[("PAN", "_T")]["PROTECTED"] == "" and public[("PAN", "_T")]["OBS_VALUE"] == "100"


def test_a_sdmx_export_says_which_dimension_does_not_apply_with_z() -> None:
    region = StatusCell("2024-W03", "ISO_WEEK", "PAN", None, "Eastern Asia", None, 9, True)
    (row, _total) = sorted(_rows(flows_sdmx_csv([region], "TS")), key=lambda r: r["REF_AREA"])
    assert (row["CITIZENSHIP"], row["CITIZENSHIP_REGION"], row["OBS_STATUS"]) == ("_Z", "030", "E")
    nat = _rows(sdmx_csv([Observation("PAN", "CHN", "2024-W03", 5)], "TS"))[0]
    assert nat["CITIZENSHIP_REGION"] == "_Z"


# -- withdrawals and empty audiences ------------------------------------------------------


def _publish(home: Home, topic: MemoryTopic) -> None:
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        key = SigningKey.load(home.country, home.signing_key_path)
        factory = EventFactory(home.country, policy, key, event_codec())
        flow = prepare_flow_events(store, factory)
        staged, _ = plan_with_reference(store, factory, flow.events, FLOW_KIND)
        if staged:
            store.stage(staged)
        drain_outbox(store, MemorySink(topic))


def _apply(agg: Home, topic: MemoryTopic) -> None:
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        )
        aggregator.apply_batch(MemorySource(topic).poll_batch(0, 10**9))


def test_a_withdrawn_cell_is_a_delete_action(tmp_path: Path) -> None:
    home, _, _ = member_with_data(tmp_path, "PAN", 400)
    agg = aggregator_for(tmp_path, [home])
    topic = MemoryTopic()
    _publish(home, topic)
    _apply(agg, topic)
    with PictureStore(agg.store_path) as store:
        cells = store.flow_cells()
    # Withdraw every cell of one (week, nationality), so no current cell keeps the key.
    period, nat = cells[0]["period"], cells[0]["nationality"]
    gone = [c for c in cells if (c["period"], c["nationality"]) == (period, nat)]
    for c in gone:
        corrections.withdraw(home, c["event_id"], "cell under review")
    _publish(home, topic)
    _apply(agg, topic)
    result = _report(agg, "flows", "--format", "sdmx", "--audience", "TS")
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    deletes = [r for r in rows if r["ACTION"] == "D"]
    assert [(r["REF_AREA"], r["CITIZENSHIP"], r["TIME_PERIOD"]) for r in deletes] == [
        ("PAN", nat or "_Z", period)
    ]
    assert deletes[0]["OBS_VALUE"] == "" and all(deletes[0][d] for d in DIMS)
    live = {(r["CITIZENSHIP"], r["TIME_PERIOD"]) for r in rows if r["ACTION"] == "I"}
    assert (nat, period) not in live
    # sdmx1 reads the deletion as a delete data set, with the structure.
    got = _sdmx1_read(result.output, _sdmx1_flow(SHIPPED))
    assert list(got["delete"]) == [("PAN", nat or "_Z", "_Z", period)]
    assert got["information"]  # the rest of the picture is still there


def test_an_audience_nothing_was_released_to_is_told_so(picture: Home, tmp_path: Path) -> None:
    out = tmp_path / "public.csv"
    result = _report(
        picture, "regional", "--format", "sdmx", "--audience", "public", "-o", str(out)
    )
    assert result.exit_code == 1
    assert "no flow statistics were released to audience 'public'" in result.output
    assert not out.exists(), "no silent empty file"
    with PictureStore(picture.store_path) as store:
        assert admitted_cells(store, Scope("public", None, NOW)) == []
        assert admitted_cells(store, Scope("TS", None, NOW))
