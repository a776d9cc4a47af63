"""``voice agents``: who may open the agent console, QA replay and the supervisor view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from voice.cli.server_options import config_option, data_dir_option, db_option, open_server_store


def _agents(db_url: str | None, data_dir: str | None, config_file: Path | None) -> Any:
    from voice.store.agents import AgentStore

    return AgentStore(open_server_store(db_url, data_dir, config_file)[0])


@click.group("agents")
def agents() -> None:
    """Create agents and supervisors and their access tokens.

    \b
    The NAME is the agent id your telephony sends with each call (Twilio customParameters
    agent_id, the SIPREC agent AOR, the AudioHook participant): an agent's console shows
    exactly the calls that carry it. Only a hash of each token is stored.
    """


@agents.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["agent", "supervisor"]), default="agent", show_default=True,
              help="supervisor: every call (of --tenant), QA uploads, outcomes, the supervisor view.")
@click.option("--tenant", default=None, help="Restrict to one tenant's calls (default: all tenants).")
@db_option
@data_dir_option
@config_option
def add(name: str, role: str, tenant: str | None, db_url: str | None, data_dir: str | None,
        config_file: Path | None) -> None:
    """Create an agent and print their token (shown only this once)."""
    from voice.errors import VoiceError

    store = _agents(db_url, data_dir, config_file)
    try:
        agent, token = store.add(name, role=role, tenant=tenant)  # type: ignore[arg-type]
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.store.close()
    click.echo(f"created {agent.role} {agent.name}" + (f" (tenant {agent.tenant})" if agent.tenant else ""),
               err=True)
    click.echo("token (shown once; paste it into the console's sign-in):", err=True)
    click.echo(token)


@agents.command("token")
@click.argument("name")
@db_option
@data_dir_option
@config_option
def token(name: str, db_url: str | None, data_dir: str | None, config_file: Path | None) -> None:
    """Issue a new token for NAME; the old one stops working."""
    from voice.errors import VoiceError

    store = _agents(db_url, data_dir, config_file)
    try:
        new = store.rotate(name)
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.store.close()
    click.echo(new)


@agents.command("remove")
@click.argument("name")
@db_option
@data_dir_option
@config_option
def remove(name: str, db_url: str | None, data_dir: str | None, config_file: Path | None) -> None:
    """Delete NAME (their calls stay in the database)."""
    from voice.errors import VoiceError

    store = _agents(db_url, data_dir, config_file)
    try:
        store.remove(name)
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.store.close()
    click.echo(f"removed {name}", err=True)


@agents.command("list")
@db_option
@data_dir_option
@config_option
def list_agents(db_url: str | None, data_dir: str | None, config_file: Path | None) -> None:
    """List agents: name, role, tenant, token hint, last sign-in."""
    store = _agents(db_url, data_dir, config_file)
    try:
        rows = store.list()
    finally:
        store.store.close()
    if not rows:
        click.echo("no agents yet: voice agents add NAME", err=True)
        return
    click.echo(f"{'name':24} {'role':10} {'tenant':12} {'token':10} last sign-in")
    for a in rows:
        seen = a.last_seen_at.strftime("%Y-%m-%d %H:%M") if a.last_seen_at else "never"
        click.echo(f"{a.name:24} {a.role:10} {a.tenant or '*':12} {a.token_hint + '…':10} {seen}")


def register(cli: click.Group) -> None:
    """Attach the command group to the main CLI."""
    cli.add_command(agents)
