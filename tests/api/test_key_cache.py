"""Authenticated keys are cached briefly: the engine's scheduler calls (several per job)
do not each pay a key lookup in the database; revoking through the API still takes effect
at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from cronicorn.api.deps import KeyCache
from tests.api.conftest import Api


def count_key_lookups(api: Api) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(api.app.state.db.sync_engine, "before_cursor_execute", before)
    return seen


async def test_a_valid_key_is_looked_up_once_within_the_ttl(api: Api) -> None:
    lookups = count_key_lookups(api)
    for _ in range(3):
        assert (await api.call("GET", "/api/scheduler/next-due", who="engine")).status_code == 200
    assert len(lookups) == 1


async def test_invalid_keys_are_not_cached(api: Api) -> None:
    lookups = count_key_lookups(api)
    headers = {"Authorization": "Bearer ck_not-a-real-key"}
    for _ in range(2):
        r = await api.call("GET", "/api/scheduler/next-due", who=None, headers=headers)
        assert r.status_code == 401
    assert len(lookups) == 2


async def test_revoking_through_the_api_applies_at_once(api: Api) -> None:
    body = {"tenant": "carol", "scope": "user"}
    created = (await api.call("POST", "/api/admin/keys", who="admin", json=body)).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await api.call("GET", "/api/jobs", who=None, headers=headers)).status_code == 200

    await api.call("DELETE", f"/api/admin/keys/{created['id']}", who="admin")

    assert (await api.call("GET", "/api/jobs", who=None, headers=headers)).status_code == 401


def test_entries_expire() -> None:
    from cronicorn.domain.models import Scope
    from cronicorn.service import Principal

    cache = KeyCache(ttl_s=0.0)
    cache.put("h", Principal(tenant_id="t", scope=Scope.ENGINE, key_id="k"))
    assert cache.get("h") is None
