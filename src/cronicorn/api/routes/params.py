"""Query parameters shared by the list routes: every list is bounded by `limit` (1…1000)
and paged with a keyset cursor, `before` (newest-first lists) or `after` (lists in creation
order): the id of the last item of the previous page."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (newest first).")]
Before = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Keyset cursor: the id of the last item of the previous page.",
    ),
]
After = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Keyset cursor: the id of the last item of the previous page.",
    ),
]
AscendingLimit = Annotated[
    int, Query(ge=1, le=1000, description="Page size (creation order, oldest first).")
]
