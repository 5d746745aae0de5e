"""`corredor keys`, `corredor member`, `corredor inbox` and `corredor linkage`: who may
say what; this node's keys, the members' keys the aggregator trusts, and what is sealed to them.

The manifest's commands (`corredor federation`) are in ``federation_cmds``; they are
listed here so that the group keeps its commands in one order.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.aggregator.setup import add_member
from node.cli.common import bootstrap_option, console, format_option, handle_errors, home_of
from node.cli.federation_cmds import federation
from node.crypto.keys import read_key_file
from node.federation import linkage_keys, trust
from node.federation.control import (
    share_linkage_key,
    sync_linkage_key,
)
from node.member.inbox import read_inbox
from node.member.member_home import export_public_key


@click.group()
def keys() -> None:
    """Manage the node's signing and encryption keys.

    Private keys are encrypted at rest when CORREDOR_KEY_PASSPHRASE is set.

    \b
    Example:
      corredor --home ./pan keys export-public > pan.pub
      corredor --home ./pan keys rotate
    """


@keys.command("export-public")
@click.option("--encryption", is_flag=True, help="The X25519 encryption key instead.")
@click.pass_context
@handle_errors
def keys_export_public(ctx: click.Context, encryption: bool) -> None:
    """Print the node's public signing key (PEM), to give to the Secretariat.

    \b
    Example:
      corredor --home ./pan keys export-public > pan.pub
      corredor --home ./pan keys export-public --encryption > pan.x25519.pub
    """
    home = home_of(ctx)
    if encryption:
        click.echo(home.encryption_pub_path.read_text(encoding="ascii"), nl=False)
    else:
        click.echo(export_public_key(home), nl=False)


@keys.command("generate")
@click.pass_context
@handle_errors
def keys_generate(ctx: click.Context) -> None:
    """Generate the node's keys where none exist (e.g. a home restored without keys).

    \b
    Example:
      CORREDOR_KEY_PASSPHRASE=... corredor --home ./pan keys generate
    """
    signing, encryption = trust.generate_member_keys(home_of(ctx))
    console.print(f"signing key {signing}\nencryption key {encryption}")


@keys.command("rotate")
@click.pass_context
@handle_errors
def keys_rotate(ctx: click.Context) -> None:
    """Make a new signing key current; the old one is kept in keys/retired/.

    Give the new public key to the Secretariat, who adds it to the manifest and
    ends the old key's validity after an overlap, so events signed before the
    rotation stay valid.

    \b
    Example:
      corredor --home ./pan keys rotate
      corredor --home ./pan keys export-public > pan-2.pub
    """
    home = home_of(ctx)
    old, new = trust.rotate_signing_key(home)
    console.print(f"retired {old}; current signing key is now {new}")
    console.print(
        f"rotation statement (signed by {old}): {trust.rotation_statement_path(home, new)}; "
        "give it to the Secretariat with the new public key"
    )


@click.group()
def member() -> None:
    """Manage the members the aggregator trusts (shortcut over `federation`).

    \b
    Example:
      corredor --home ./ts member add PAN pan.pub
    """


@member.command("add")
@click.argument("country")
@click.argument("pem_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--encryption-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The member's X25519 public key (PEM).",
)
@click.pass_context
@handle_errors
def member_add(
    ctx: click.Context, country: str, pem_file: Path, encryption_key: Path | None
) -> None:
    """Add COUNTRY's public signing key (PEM_FILE) to the manifest and sign it.

    \b
    Example:
      corredor --home ./ts member add PAN pan.pub
    """
    key_id = add_member(home_of(ctx), country, pem_file, encryption_key)
    console.print(f"Recorded key [bold]{key_id}[/] for {country.upper()}")


@click.command()
@bootstrap_option
@format_option("table", "json")
@click.pass_context
@handle_errors
def inbox(ctx: click.Context, bootstrap: str | None, fmt: str) -> None:
    """Read the restricted reports (intelligence) addressed to this country.

    Each is relayed sealed by the Secretariat, verified against the sender's key
    in the manifest, and opened with this node's own encryption key.

    \b
    Example:
      corredor --home ./gtm federation sync
      corredor --home ./gtm inbox
    """
    result = read_inbox(home_of(ctx), bootstrap=bootstrap)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "items": [
                        {
                            "event_id": i.event_id,
                            "kind": i.kind,
                            "producer": i.producer,
                            "subject": i.subject,
                            "revision": i.revision,
                            "produced_at": i.produced_at.isoformat(),
                            "signed_by": i.signed_by,
                            "withdrawn": i.body is None,
                            "body": i.body,
                        }
                        for i in result.items
                    ],
                    "not_addressed": result.not_addressed,
                    "rejected": result.rejected,
                },
                indent=2,
                default=str,
            )
        )
        return
    if not result.items:
        console.print("The inbox is empty.")
    for item in result.items:
        if item.body is None:
            console.print(f"[dim]{item.subject} r{item.revision}: withdrawn by {item.producer}[/]")
            continue
        b = item.body
        console.rule(f"{item.producer} · {b.get('title')} · r{item.revision}")
        console.print(
            f"category {b.get('category')}, confidence {b.get('confidence')}, "
            f"period {b.get('period_start')} – {b.get('period_end') or ''}"
        )
        console.print(f"countries involved: {', '.join(b.get('countries_involved') or [])}")
        console.print(b.get("summary", ""))
        if b.get("handling"):
            console.print(f"[bold]handling:[/] {b['handling']}")
        console.print(f"[dim]signed by {item.signed_by}; event {item.event_id}[/]")
    console.print(
        f"[dim]{result.not_addressed} restricted events addressed to others; "
        f"{result.rejected} unverifiable[/]"
    )


@click.group()
def linkage() -> None:
    """The regional linkage key: members hold it, the Secretariat never does.

    Linkage tokens (HMAC-SHA256 under this key) let the aggregator join one
    person's records across borders into a route without being able to
    reverse a token.

    \b
    Example:
      corredor --home ./pan linkage init
      corredor --home ./pan linkage share
      corredor --home ./cri linkage sync
    """


@linkage.command("init")
@click.pass_context
@handle_errors
def linkage_init(ctx: click.Context) -> None:
    """Generate the regional linkage key here (one member does this, once).

    \b
    Example:
      corredor --home ./pan linkage init
    """
    console.print(f"linkage key {linkage_keys.create_linkage_key(home_of(ctx))} created")


@linkage.command("share")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the signed, sealed bundle to a file instead of the control topic.",
)
@click.option("--yes", is_flag=True, help="Do not ask before sealing to a new member.")
@bootstrap_option
@click.pass_context
@handle_errors
def linkage_share(
    ctx: click.Context, output: Path | None, bootstrap: str | None, yes: bool
) -> None:
    """Seal the linkage key to every other member whose membership and encryption
    key verify under quorum, naming them first, and publish it. With
    `confirm_new_linkage_recipients: true` in corredor.yaml it asks before
    sealing to a member it never sealed to.

    \b
    Example:
      corredor --home ./pan linkage share
      corredor --home ./pan linkage share -o linkage-bundle.json
    """
    home = home_of(ctx)
    recipients = linkage_keys.linkage_recipients(home)
    console.print(f"sealing the linkage key to: {', '.join(recipients) or 'nobody'}")
    new = linkage_keys.new_linkage_recipients(home, recipients)
    if new and home.config.confirm_new_linkage_recipients and not yes:
        click.confirm(
            f"{', '.join(new)} never received it from this node: seal to them?", abort=True
        )
    if output is not None:
        bundle, countries = linkage_keys.bundle_linkage_key(home)
        output.write_text(bundle.to_json(), encoding="utf-8")
    else:
        countries = share_linkage_key(home, bootstrap=bootstrap)
    linkage_keys.remember_linkage_recipients(home, countries)
    console.print(f"linkage key sealed to {', '.join(countries)}")


@linkage.command("sync")
@click.argument(
    "file", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@bootstrap_option
@click.pass_context
@handle_errors
def linkage_sync(ctx: click.Context, file: Path | None, bootstrap: str | None) -> None:
    """Receive the linkage key from the control topic (or FILE), verified against
    the manifest and opened with this node's key.

    \b
    Example:
      corredor --home ./cri linkage sync
      corredor --home ./cri linkage sync linkage-bundle.json
    """
    from node.crypto.linkage import KeyBundle

    home = home_of(ctx)
    if file is not None:
        fingerprint, stored = linkage_keys.accept_linkage_bundle(
            home, KeyBundle.from_json(read_key_file(file))
        )
    else:
        fingerprint, stored = sync_linkage_key(home, bootstrap=bootstrap)
    console.print(f"linkage key {fingerprint} {'stored' if stored else 'already held'}")


COMMANDS: tuple[click.Command, ...] = (keys, member, federation, inbox, linkage)
