"""`cronicorn alerts test CHANNEL` and `cronicorn alerts channels`: parse, call, print.

Like `cronicorn jobs`, they talk to the API when `CRONICORN_API_URL` is set (the API process
sends the test), else to the service layer on the database.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cronicorn.cli.common import EXIT_FAILED, console, fail, new_typer
from cronicorn.cli.jobs import JsonFlag, _call

alerts_app = new_typer("Alert channels: list them, send a test message.")


@alerts_app.command("test")
def send_test(
    channel: Annotated[str, typer.Argument(help="The channel's id or name.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a test message to CHANNEL now; exit 1 if it was not delivered."""
    delivery = _call(lambda gw: gw.test_channel(channel))
    if as_json:
        print(delivery.model_dump_json(indent=2))
    elif delivery.status == "delivered":
        console.print(f"Test message delivered to channel {delivery.channel_name}.")
    if delivery.status != "delivered":
        fail(f"test message to {delivery.channel_name} failed: {delivery.last_error}", EXIT_FAILED)


@alerts_app.command("channels")
def list_channels(as_json: JsonFlag = False) -> None:
    """The tenant's alert channels (secrets shown as ***)."""
    channels = _call(lambda gw: gw.list_channels())
    if as_json:
        print(json.dumps([c.model_dump(mode="json") for c in channels], indent=2))
        return
    if not channels:
        console.print("No alert channels yet (POST /api/alerts/channels, see docs/alerts.md).")
        return
    table = Table(title="Alert channels", title_justify="left")
    for column in ("id", "name", "kind", "target", "enabled"):
        table.add_column(column)
    for c in channels:
        target = c.url or ", ".join(c.email_to or [])
        table.add_row(c.id, c.name, c.kind, target, "yes" if c.enabled else "no")
    console.print(table)
