"""`corredor federation`: the manifest of members and keys, and its changes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from node.cli.common import bootstrap_option, console, format_option, handle_errors, home_of
from node.crypto.keys import read_key_text
from node.federation import drafts, membership, statements, trust, trust_ledger
from node.federation.control import (
    approve_change,
    publish_manifest,
    revoke_own_key,
    sync_federation,
)


@click.group()
def federation() -> None:
    """The federation manifest: members, their keys and status, signed by the Secretariat.

    \b
    Example:
      corredor --home ./ts federation add-member PAN --signing-key pan.pub
      corredor --home ./ts federation sign --publish
      corredor --home ./pan federation sync
    """


@federation.command("add-member")
@click.argument("country")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="Ed25519 public key (PEM).",
)
@click.option(
    "--encryption-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="X25519 public key (PEM).",
)
@click.option("--name", help="Country name (default: from the code).")
@click.option(
    "--status", type=click.Choice(["member", "observer"]), default="member", show_default=True
)
@click.option("--principal", help="Kafka principal (default User:<ISO3>).")
@click.option("--valid-days", type=int, help="Keys expire after this many days.")
@click.option(
    "--statement",
    "statements",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A rotation statement the member signed for a new key (repeatable).",
)
@click.pass_context
@handle_errors
def federation_add_member(
    ctx: click.Context,
    country: str,
    signing_key: Path,
    encryption_key: Path | None,
    name: str | None,
    status: str,
    principal: str | None,
    valid_days: int | None,
    statements: tuple[Path, ...],
) -> None:
    """Add a member, or a new key of a member, to the draft manifest.

    A new member counts on the nodes only once a quorum of members approved it
    (`federation approve`); a member's new key only with the member's own
    rotation statement (`keys rotate` writes it).

    \b
    Example:
      corredor --home ./ts federation add-member BRA --status observer \\
          --signing-key bra.pub --encryption-key bra.x25519.pub
      corredor --home ./ts federation add-member PAN --signing-key pan-2.pub \\
          --statement rotation-PAN-0123456789abcdef.json
    """
    home = home_of(ctx)
    key_id = drafts.add_member(
        home,
        country,
        read_key_text(signing_key),
        encryption_pem=read_key_text(encryption_key) if encryption_key else None,
        name=name,
        status="observer" if status == "observer" else "member",
        principal=principal,
        valid_days=valid_days,
    )
    if statements:
        drafts.add_key_statements(home, country, [trust.read_key_statement(p) for p in statements])
    console.print(f"draft: {country.upper()} key {key_id}; run `federation sign` to publish it")


@federation.command("revoke")
@click.argument("country")
@click.option("--key", "key_id", help="Only this key id (default: all of the member's keys).")
@click.option(
    "--retire-after",
    type=float,
    metavar="HOURS",
    help="Not a revocation: end the key's validity after this overlap (rotation).",
)
@click.option(
    "--compromised-at",
    "compromised_at",
    metavar="TIME",
    help="ISO 8601 time with zone (e.g. 2026-11-30T08:00Z) from which the key may have "
    "been in other hands: events the broker appended from then on leave the picture, "
    "earlier ones stay. Default: nothing the key ever signed is trusted.",
)
@click.pass_context
@handle_errors
def federation_revoke(
    ctx: click.Context,
    country: str,
    key_id: str | None,
    retire_after: float | None,
    compromised_at: str | None,
) -> None:
    """Revoke a member's key(s) in the draft. With --compromised-at, what they
    signed from that time on is not trusted (judged by the broker's append
    time); without it, nothing they ever signed. With --retire-after, end a
    rotated key's validity instead (its events stay valid).

    \b
    Example:
      corredor --home ./ts federation revoke PAN --key PAN:0123456789abcdef
      corredor --home ./ts federation revoke PAN --key PAN:0123456789abcdef \\
          --compromised-at 2026-11-30T08:00Z
      corredor --home ./ts federation revoke PAN --key PAN:0123456789abcdef --retire-after 48
    """
    home = home_of(ctx)
    if retire_after is not None:
        if key_id is None:
            raise click.UsageError("--retire-after needs --key")
        if compromised_at is not None:
            raise click.UsageError("--retire-after is a rotation: it takes no --compromised-at")
        until = drafts.retire_key(home, country, key_id, retire_after)
        console.print(f"draft: {key_id} valid until {until.isoformat(timespec='seconds')}")
        return
    since = None
    if compromised_at is not None:
        try:
            since = datetime.fromisoformat(compromised_at)
        except ValueError as exc:
            raise click.BadParameter(
                f"not an ISO 8601 time: {compromised_at!r}", param_hint="--compromised-at"
            ) from exc
        if since.tzinfo is None:
            raise click.BadParameter(
                "give a time zone (e.g. 2026-11-30T08:00Z)", param_hint="--compromised-at"
            )
    for revoked in drafts.revoke(home, country, key_id, compromised_at=since):
        scope = (
            f"events appended from {since.isoformat()} on leave the picture"
            if since is not None
            else "nothing it signed is trusted"
        )
        console.print(f"draft: revoked {revoked} ({scope}); `federation sign` to publish it")


@federation.command("sign")
@click.option("--publish", is_flag=True, help="Also publish it on the control topic.")
@bootstrap_option
@click.pass_context
@handle_errors
def federation_sign(ctx: click.Context, publish: bool, bootstrap: str | None) -> None:
    """Sign the draft as the next manifest serial and make it current.

    \b
    Example:
      corredor --home ./ts federation sign --publish
    """
    home = home_of(ctx)
    signed = drafts.sign_draft(home)
    manifest = trust.current_manifest(home)
    console.print(f"signed manifest serial {manifest.serial} with {signed.signer}")
    if publish:
        topic = publish_manifest(home, bootstrap=bootstrap)
        console.print(f"published on {topic}")


@federation.command("sync")
@bootstrap_option
@click.pass_context
@handle_errors
def federation_sync(ctx: click.Context, bootstrap: str | None) -> None:
    """Fetch the manifest history and approvals from the control topic; keep a
    manifest only if the pinned Secretariat key signed it, its serial is newer
    and it extends the hash chain. Prints what changed: members added or
    removed, keys and who signed them, approvals, and what lacks quorum.

    \b
    Example:
      corredor --home ./pan federation sync
    """
    result = sync_federation(home_of(ctx), bootstrap=bootstrap)
    state = "updated to" if result.updated else "already at"
    console.print(f"manifest {state} serial {result.manifest.serial}")
    for line in result.changes:
        # click, not rich: key ids such as GTM:x:... must not turn into emoji.
        click.echo(click.style(line, fg="red", bold=True) if line.startswith("!") else line)


@federation.command("approve")
@click.argument("change_id")
@bootstrap_option
@click.pass_context
@handle_errors
def federation_approve(ctx: click.Context, change_id: str, bootstrap: str | None) -> None:
    """Sign this member's approval of a pending membership change (CHANGE_ID as
    `federation sync` prints it) and publish it on the control topic.

    \b
    Example:
      corredor --home ./pan federation sync
      corredor --home ./pan federation approve 3f9c0a6b1d2e4f5a6b7c
    """
    approval = approve_change(home_of(ctx), change_id, bootstrap=bootstrap)
    click.echo(
        f"approved {approval.change_id}: {statements.describe(approval.change)} "
        f"(signed by {approval.key_id})"
    )


@federation.command("revoke-own")
@click.option("--key", "key_id", help="This member's key id (default: its current signing key).")
@bootstrap_option
@click.pass_context
@handle_errors
def federation_revoke_own(ctx: click.Context, key_id: str | None, bootstrap: str | None) -> None:
    """Revoke one of this member's own keys, signed with its current signing key,
    on the control topic. Every node applies it without a quorum and without
    waiting for the Secretariat.

    \b
    Example:
      corredor --home ./pan federation revoke-own --key PAN:0123456789abcdef
    """
    revocation = revoke_own_key(home_of(ctx), key_id, bootstrap=bootstrap)
    click.echo(f"revoked {revocation.key_id} (signed by {revocation.signed_by})")


@federation.command("founders")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write it here."
)
@click.option("--pin", is_flag=True, help="Also pin it in this home (the Secretariat's).")
@click.pass_context
@handle_errors
def federation_founders(ctx: click.Context, output: Path | None, pin: bool) -> None:
    """Print the founding members list from the current manifest and its digest,
    for the founding members to compare out of band before pinning it.

    \b
    Example:
      corredor --home ./ts federation founders -o founders.json --pin
    """
    home = home_of(ctx)
    founders = trust.founders_from_manifest(home)
    text = founders.model_dump_json(indent=2)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)
    if pin:
        trust_ledger.pin_founders(home, founders)
    click.echo(f"founders digest {founders.digest()}", err=output is None)


@federation.command("pin-founders")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--digest", help="The digest agreed out of band; refuse the file if it differs.")
@click.pass_context
@handle_errors
def federation_pin_founders(ctx: click.Context, file: Path, digest: str | None) -> None:
    """Pin the founding members list: the root of trust from which membership
    changes need a quorum and keys need their member's signature.

    \b
    Example:
      corredor --home ./pan federation pin-founders founders.json --digest 9a1f...
    """
    home = home_of(ctx)
    founders = trust_ledger.read_founders_file(file)
    pinned = trust_ledger.pin_founders(home, founders, digest)
    countries = ", ".join(f.country for f in founders.members)
    console.print(f"pinned founders {countries} (digest {pinned})")


@federation.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.pass_context
@handle_errors
def federation_import(ctx: click.Context, file: Path) -> None:
    """Accept a signed manifest from a file (verified against the pinned key).

    \b
    Example:
      corredor --home ./pan federation import manifest.json
    """
    from node.federation.manifest import read_signed

    manifest, updated = trust.accept_manifest(home_of(ctx), read_signed(file))
    console.print(f"manifest {'updated to' if updated else 'already at'} serial {manifest.serial}")


@federation.command("show")
@format_option("table", "json")
@click.option("--draft", is_flag=True, help="Show the Secretariat's unsigned draft.")
@click.pass_context
@handle_errors
def federation_show(ctx: click.Context, fmt: str, draft: bool) -> None:
    """Show the current (verified) manifest: members, status, keys and validity.

    \b
    Example:
      corredor --home ./pan federation show
      corredor --home ./ts federation show --draft --format json
    """
    home = home_of(ctx)
    manifest = drafts.load_draft(home) if draft else trust.current_manifest(home)
    view = None if draft else trust.trust_view(home, manifest)
    if fmt == "json":
        data = manifest.model_dump(mode="json")
        if view is not None:
            data["trust_view"] = {
                "enforced": view.enforced,
                "counted": view.status,
                "pending": [p.change_id for p in view.pending],
                "rejected_keys": [r.key_id for r in view.rejected],
            }
        click.echo(json.dumps(data, indent=2))
        return
    console.print(
        f"Manifest serial {manifest.serial}, issued {manifest.issued_at:%Y-%m-%d %H:%M} UTC, "
        f"signed by {manifest.secretariat_key_id}{' (DRAFT)' if draft else ''}"
    )
    table = Table(title_justify="left")
    for col in (
        "country",
        "name",
        "status",
        "principal",
        "key",
        "kind",
        "valid from",
        "valid until",
        "revoked",
        "compromised from",
        "counted",
    ):
        table.add_column(col)
    for m in manifest.members:
        for kind, entries in (("signing", m.signing_keys), ("encryption", m.encryption_keys)):
            for k in entries:
                table.add_row(
                    m.country,
                    m.name,
                    m.status,
                    m.kafka_principal,
                    k.key_id,
                    kind,
                    f"{k.valid_from:%Y-%m-%d %H:%M}",
                    f"{k.valid_until:%Y-%m-%d %H:%M}" if k.valid_until else "",
                    f"[red]{k.revoked_at:%Y-%m-%d %H:%M}[/]" if k.revoked_at else "",
                    (
                        f"[red]{k.compromised_at:%Y-%m-%d %H:%M}[/]"
                        if k.compromised_at
                        else "[red]ever[/]"
                        if k.revoked_at
                        else ""
                    ),
                    _counted(view, m.country, kind, k.key_id),
                )
    console.print(table)


def _counted(view: membership.TrustView | None, country: str, kind: str, key_id: str) -> str:
    """Whether this home counts the key (under quorum), for `federation show`."""
    if view is None:
        return ""
    ok = (
        view.signing_key_ok(country, key_id)
        if kind == "signing"
        else view.encryption_key_ok(country, key_id)
    )
    return "yes" if ok and view.counts(country) else "[red]NO[/]"
