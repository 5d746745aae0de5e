"""How each kind of verified event changes the picture.

One applier per event kind. An applier is called only for the newest revision
of a subject, inside the batch's SQLite transaction; a None body is a
withdrawal of the subject.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from node.model.events import Envelope
from node.store.picture import PictureStore

Applier = Callable[[PictureStore, sqlite3.Connection, Envelope, dict[str, Any] | None], None]


def apply_flow_statistic(
    store: PictureStore, conn: sqlite3.Connection, env: Envelope, body: dict[str, Any] | None
) -> None:
    store.upsert_flow(conn, env.subject, env.revision, env.event_id, env.producer, body)


APPLIERS: dict[str, Applier] = {
    "FlowStatistic": apply_flow_statistic,
}
