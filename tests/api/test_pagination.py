"""Every list route is paginated with a bounded `limit` (issue 10)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ENDPOINT, JOB, Api

LISTS = [
    ("alice", "/api/jobs"),
    ("alice", "/api/jobs/{job}/endpoints"),
    ("alice", "/api/jobs/{job}/messages"),
    ("alice", "/api/jobs/{job}/runs"),
    ("alice", "/api/jobs/{job}/errors"),
    ("alice", "/api/jobs/{job}/decisions"),
    ("alice", "/api/runs/{run}/ai"),
    ("alice", "/api/alerts/channels"),
    ("alice", "/api/alerts/channels/{channel}/deliveries"),
    ("alice", "/api/alerts"),
    ("alice", "/api/alerts/{alert}/deliveries"),
    ("admin", "/api/admin/keys"),
    ("engine", "/api/scheduler/workers"),
]
PATH_PARAMS = {
    "{job}": "{job_id}",
    "{channel}": "{channel_id}",
    "{alert}": "{alert_id}",
    "{run}": "{run_id}",
}
UNKNOWN_IDS = ("{alert}", "{run}")
HOOK = {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/x"}


def _openapi_path(path: str) -> str:
    for mine, theirs in PATH_PARAMS.items():
        path = path.replace(mine, theirs)
    return path


def test_every_get_list_route_takes_a_bounded_limit(sqlite_api: Api) -> None:
    """Routes answering a JSON array: all of them are in LISTS (a new one must be too)."""
    schema = sqlite_api.app.openapi()
    arrays = set()
    for path, ops in schema["paths"].items():
        get = ops.get("get")
        if not get:
            continue
        content = get["responses"]["200"].get("content", {}).get("application/json", {})
        if content.get("schema", {}).get("type") == "array":
            arrays.add(path)
            limit = next(p for p in get.get("parameters", []) if p["name"] == "limit")
            assert limit["schema"]["maximum"] == 1000, path
    assert arrays == {_openapi_path(path) for _, path in LISTS}


@pytest.mark.parametrize(("who", "path"), LISTS)
@pytest.mark.parametrize("limit", ["0", "1001", "lots"])
async def test_limit_out_of_bounds_is_a_422(
    sqlite_api: Api, who: str, path: str, limit: str
) -> None:
    """On a real job and channel of the caller. An incident only arises from failing runs
    (tests/alerting) and a run from the engine, so `{alert}` and `{run}` are ids of nothing:
    `limit` is validated with the request, before the route looks the id up (the same request
    with a good limit is a 404, so the 422 is the limit's)."""
    job = (await sqlite_api.call("POST", "/api/jobs", json=JOB)).json()
    channel = (await sqlite_api.call("POST", "/api/alerts/channels", json=HOOK)).json()
    url = path.format(job=job["id"], channel=channel["id"], alert="no-such-alert", run="no-run")
    r = await sqlite_api.call("GET", url, who=who, params={"limit": limit})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "limit"]
    ok = await sqlite_api.call("GET", url, who=who, params={"limit": "1000"})
    assert ok.status_code == (404 if any(p in path for p in UNKNOWN_IDS) else 200), ok.text


async def test_endpoints_page_in_creation_order(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    path = f"/api/jobs/{job['id']}/endpoints"
    for i in range(5):
        await api.call("POST", path, json={**ENDPOINT, "name": f"e{i}"})
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 2} | ({"after": after} if after else {})
        page = (await api.call("GET", path, params=params)).json()
        if not page:
            break
        assert len(page) <= 2
        seen += [e["name"] for e in page]
        after = page[-1]["id"]
    assert seen == [f"e{i}" for i in range(5)]
    r = await api.call("GET", path, params={"after": job["id"]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "after"]


async def test_admin_key_list_pages(api: Api) -> None:
    everything = (await api.call("GET", "/api/admin/keys", who="admin")).json()
    assert len(everything) == 5
    first = (await api.call("GET", "/api/admin/keys", who="admin", params={"limit": 3})).json()
    rest = (
        await api.call(
            "GET", "/api/admin/keys", who="admin", params={"after": first[-1]["id"], "limit": 3}
        )
    ).json()
    assert [k["id"] for k in first + rest] == [k["id"] for k in everything]
    r = await api.call("GET", "/api/admin/keys", who="admin", params={"after": "nope"})
    assert r.status_code == 422
