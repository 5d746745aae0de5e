"""Policy commands: check policy files, preview what would leave, diff two
policy versions on the node's own data, explain a published event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from node.cli.common import format_option, handle_errors, home_of
from node.member import policy_audit as audit_lib
from node.member import policy_diff as diff_lib
from node.member import preview as lib


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def render_preview(data: dict[str, Any]) -> str:
    p = data["policy"]
    lines = [
        f"{data['country']}: what would leave under {p['id']} {p['version']} "
        f"(sha256 {p['sha256'][:16]}), from {data['records']} raw records",
    ]
    if data.get("unknown_places"):
        lines.append(
            f"{data['unknown_places']} of them at a place {data['places_file']} does not list: "
            "their province and border sector leave as _U"
        )
    lines.append("")
    for ex in data["exchanges"]:
        head = f"{ex['exchange']} ({ex['kind']})"
        if not ex["shared"]:
            lines.append(f"{head}: not shared")
            continue
        lines.append(
            f"{head}: to {_fmt(ex['audiences'])} for {_fmt(ex['purposes'])}, "
            f"kept {ex['retention_days']} days"
        )
        if "note" in ex:
            lines.append(f"  {ex['note']}")
            continue
        lines.append(f"  fields            {_fmt(ex['fields'])}")
        lines.append(f"  events            {ex['events']}")
        if ex["kind"] == "FlowStatistic":
            lines.append(
                f"  cells             {ex['cells']} finest, {ex['published_cells']} published, "
                f"{ex['coarsened_cells']} of them coarsened"
            )
            lines.append(
                f"  suppressed        {ex['suppressed_cells']} "
                f"({ex['primary_suppressed']} primary, {ex['secondary_suppressed']} secondary)"
            )
            tables = "; ".join("[" + ", ".join(t) + "]" for t in ex["tables"])
            lines.append(f"  tables            {tables}")
            lines.append(
                f"  table cells       {ex['table_cells']} published, "
                f"{ex['table_suppressed']} suppressed"
            )
            if ex["published_total"] is None:
                lines.append("  total published   - (every count noisy: no exact total)")
            else:
                lines.append(f"  total published   {ex['published_total']} (in detail cells)")
            lines.append(
                "  coverage (exact)  "
                + ", ".join(
                    f"{view} {'-' if share is None else f'{share:.1%}'}"
                    for view, share in ex["coverage"].items()
                )
            )
        else:
            lines.append(f"  records           {ex['records']}")
            lines.append(
                f"  held back         {ex['held_back']} (flow cell not published alone, or "
                f"group below k={ex['k_anonymity']} on the published quasi-identifiers)"
            )
            lines.append(f"  linkage tokens    {ex['linkage_tokens']}")
            for name, rule in ex["field_rules"].items():
                lines.append(f"  rule              {name}: {rule}")
        lines.append(f"  refused by guard  {ex['refused']}")
        for sample in ex["samples"]:
            lines.append(f"  sample            {json.dumps(sample, sort_keys=True)}")
    return "\n".join(lines)


def render_diff(data: dict[str, Any]) -> str:
    lines = [f"{data['country']}: {data['records']} raw records under two policies"]
    lines += data.get("warnings", [])
    for side in ("old", "new"):
        p = data[side]
        lines.append(f"  {side}  {p['file']}: {p['id']} {p['version']} sha256 {p['sha256'][:16]}")
    for ex in data["exchanges"]:
        lines.append("")
        lines.append(f"{ex['exchange']} ({ex['kind']})")
        changes = [
            k
            for k in (
                "fields_added",
                "fields_removed",
                "audiences_added",
                "audiences_removed",
                "purposes_added",
                "purposes_removed",
            )
            if ex[k]
        ]
        if not ex["changed"] and not changes:
            lines.append("  no change")
            continue
        width = max(len(m) for m in ex["metrics"])
        lines.append(f"  {'metric':{width}}  {'old':>12}  {'new':>12}  change")
        for name, v in ex["metrics"].items():
            old, new = v["old"], v["new"]
            delta = ""
            if isinstance(old, int) and isinstance(new, int) and not isinstance(old, bool):
                delta = f"{new - old:+d}" if new != old else ""
            elif old != new:
                delta = "changed"
            lines.append(f"  {name:{width}}  {_fmt(old):>12}  {_fmt(new):>12}  {delta}".rstrip())
        for k in changes:
            lines.append(f"  {k.replace('_', ' '):{width}}  {_fmt(ex[k])}")
    return "\n".join(lines)


@click.group()
def policy() -> None:
    """Check policies, compare versions, explain what let an event out.

    \b
    Example:
      corredor policy check
      corredor --home ./pan policy diff policies/PAN.yaml new-PAN.yaml
    """


@policy.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def policy_check(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Validate policy FILES (default: every policies/*.yaml) against the model
    and the regional floor. Errors name the file, the key and the problem; exit
    status 1 if any file fails.

    \b
    Example:
      corredor policy check
      corredor policy check policies/PAN.yaml draft.yaml
    """
    results = audit_lib.check_policies(list(files) or None)
    for r in results:
        if r.ok:
            click.echo(f"ok    {r.file}: {r.detail}")
        else:
            click.echo(f"FAIL  {r.file}", err=True)
            for line in r.detail.splitlines():
                click.echo(f"      {line}", err=True)
    if not all(r.ok for r in results):
        ctx.exit(1)


@policy.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@format_option("table", "json")
@click.pass_context
@handle_errors
def policy_diff(ctx: click.Context, old: Path, new: Path, fmt: str) -> None:
    """Show what more, or less, would leave under NEW than under OLD, on this
    node's own raw data: events, cells, suppression, fields, audiences.

    \b
    Example:
      corredor --home ./pan policy diff policies/PAN.yaml draft-PAN.yaml
    """
    data = diff_lib.policy_diff(home_of(ctx), old, new)
    click.echo(json.dumps(data, indent=2) if fmt == "json" else render_diff(data))


def render_audit(data: dict[str, Any]) -> str:
    lines = [
        f"{data['country']}: audit of what was published under {data['policy']['id']} "
        f"{data['policy']['version']}"
    ]
    for ex in data["exchanges"]:
        lines.append("")
        lines.append(f"{ex['exchange']} ({ex['kind']}) to {_fmt(ex['audiences'])}")
        lines.append(f"  protection level   {ex['protection']}")
        lines.append(f"  blocks             {ex['blocks']}")
        lines.append(f"  hidden counts      {ex['hidden']}, {ex['protected']} protected")
        n = ex["narrowest"]
        if n is None:
            lines.append("  narrowest          - (nothing hidden)")
        else:
            dims = ", ".join(f"{k}={v}" for k, v in n["dimensions"].items())
            high = "inf" if n["high"] is None else n["high"]
            lines.append(
                f"  narrowest          {n['period']} {dims} (block {n['block']}, release "
                f"{n['release']}): {n['low']}..{high}"
            )
        across = ex.get("across_shapes")
        if across is not None:
            lines.append(
                f"  across shapes      {across['foreign_blocks']} older-shape blocks read; "
                f"{across['hidden']} hidden counts, {across['protected']} protected"
            )
            if across["narrowest"] is not None:
                lines.append(f"  narrowest across   {_cell_text(across['narrowest'])}")
            if not across["consistent"]:
                lines.append("  FAILS              across shapes: the facts contradict each other")
            for cell in across["failing"]:
                lines.append(f"  FAILS              across shapes: {_cell_text(cell)}")
        lines.append(f"  passes             {_fmt(ex['passes'])}")
        for block in ex["failing_blocks"]:
            lines.append(f"  FAILS              block {block}")
    return "\n".join(lines)


def _cell_text(cell: dict[str, Any]) -> str:
    """A count of the audit across shapes: its cell, shape, release, interval."""
    dims = ", ".join(f"{k}={v}" for k, v in cell["dimensions"].items())
    high = "inf" if cell["high"] is None else cell["high"]
    block = "" if cell["block"] is None else f"block {cell['block']}, "
    return (
        f"{cell['period']} {dims} ({cell['shape']} shape, {block}release {cell['release']}): "
        f"{cell['low']}..{high}, protection {cell['protection']}"
    )


@policy.command("audit")
@format_option("table", "json")
@click.pass_context
@handle_errors
def policy_audit(ctx: click.Context, fmt: str) -> None:
    """Run the attacker's model on everything this node already published
    (every release of every block in the suppression ledger, margins, counts
    that only grow): the narrowest interval of a hidden count and its cell, how
    many hidden counts keep the protection level, and whether all pass. Exit
    status 1 if anything already published fails.

    \b
    Example:
      corredor --home ./hnd policy audit
      corredor --home ./hnd policy audit --format json
    """
    data = audit_lib.audit(home_of(ctx))
    click.echo(json.dumps(data, indent=2) if fmt == "json" else render_audit(data))
    if not data["passes"]:
        ctx.exit(1)


@policy.command("explain")
@click.argument("event_id")
@format_option("table", "json")
@click.pass_context
@handle_errors
def policy_explain(ctx: click.Context, event_id: str, fmt: str) -> None:
    """Show the policy version (id, version, SHA-256) and the rules that let
    EVENT_ID out of this node.

    \b
    Example:
      corredor --home ./pan policy explain 6f1c2a9e-...
    """
    data = audit_lib.explain(home_of(ctx), event_id)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    p = data["policy"]
    click.echo(f"{data['kind']} {data['subject']} revision {data['revision']}")
    click.echo(
        f"let out by {p['id']} {p['version']} sha256 {p['sha256']} ({p['source']}"
        f"{'' if p['current'] else '; the home now holds another version'})"
    )
    click.echo(f"legal basis: {data['legal_basis']}")
    click.echo(f"audiences: {_fmt(data['audiences'])}; purposes: {_fmt(data['purposes'])}")
    click.echo(f"retain until: {_fmt(data['retain_until'])}")
    for rule in data["rules"]:
        click.echo(f"  rule: {rule}")


@click.command()
@format_option("table", "json")
@click.pass_context
@handle_errors
def preview(ctx: click.Context, fmt: str) -> None:
    """Show exactly what a publish would let out now, per exchange: the fields,
    the number of events and cells, what was suppressed or coarsened, what the
    egress guard refused, and a few sample events. Nothing is written or sent.

    \b
    Example:
      corredor --home ./pan preview
      corredor --home ./pan preview --format json
    """
    data = lib.preview(home_of(ctx))
    click.echo(json.dumps(data, indent=2) if fmt == "json" else render_preview(data))


COMMANDS: tuple[click.Command, ...] = (policy, preview)
