"""Alert routes: channel validation (422 naming the field, nothing stored), tenant isolation,
masked secrets, rules with tenant defaults, incident listing."""

from __future__ import annotations

import pytest

from tests.api.conftest import JOB, Api

HOOK = {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/T0/secret-path"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "webhook"}, "url"),
        ({"name": "x", "kind": "slack", "email_to": ["a@example.com"]}, "url"),
        ({"name": "x", "kind": "email", "url": "https://a.example/x"}, "email_to"),
        ({"name": "x", "kind": "pager", "url": "https://a.example/x"}, "kind"),
        ({"name": "x", "kind": "webhook", "url": "ftp://a.example/x"}, "url"),
        ({"name": "", "kind": "webhook", "url": "https://a.example/x"}, "name"),
        ({**HOOK, "rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({**HOOK, "surprise": 1}, "surprise"),
        ({**HOOK, "url": "http://127.0.0.1:8080/x"}, "url"),
    ],
)
async def test_bad_channel_is_a_422_naming_the_field_and_stores_nothing(
    sqlite_api: Api, body: dict[str, object], field: str
) -> None:
    before = await sqlite_api.snapshot()
    resp = await sqlite_api.call("POST", "/api/alerts/channels", json=body)
    assert resp.status_code == 422, resp.text
    assert field in resp.text
    assert "secret-path" not in resp.text
    assert await sqlite_api.snapshot() == before


async def test_channels_are_tenant_scoped_and_never_show_secrets(api: Api) -> None:
    created = (await api.call("POST", "/api/alerts/channels", json=HOOK)).json()
    secret = created["signing_secret"]
    assert created["url"] == "https://hooks.example.com/***"
    channel_id = created["id"]
    for path in ("/api/alerts/channels", f"/api/alerts/channels/{channel_id}"):
        resp = await api.call("GET", path)
        assert resp.status_code == 200
        assert secret not in resp.text
        assert "secret-path" not in resp.text
        assert '"signing_secret":"***"' in resp.text
    patched = await api.call(
        "PATCH", f"/api/alerts/channels/{channel_id}", json={"enabled": False, "name": "ops2"}
    )
    assert patched.status_code == 200
    assert (patched.json()["enabled"], patched.json()["name"]) == (False, "ops2")
    assert secret not in patched.text
    bad = await api.call("PATCH", f"/api/alerts/channels/{channel_id}", json={"email_to": None})
    assert bad.status_code == 422

    for method, path in (
        ("GET", f"/api/alerts/channels/{channel_id}"),
        ("PATCH", f"/api/alerts/channels/{channel_id}"),
        ("DELETE", f"/api/alerts/channels/{channel_id}"),
        ("POST", f"/api/alerts/channels/{channel_id}/test"),
        ("POST", "/api/alerts/channels/ops2/test"),
    ):
        resp = await api.call(method, path, who="bob", json={} if method == "PATCH" else None)
        assert resp.status_code == 404, (method, path)
    assert (await api.call("GET", "/api/alerts/channels", who="bob")).json() == []
    assert (await api.call("DELETE", f"/api/alerts/channels/{channel_id}")).status_code == 204
    assert (await api.call("GET", f"/api/alerts/channels/{channel_id}")).status_code == 404


async def test_rules_job_replaces_tenant_default_which_replaces_builtin(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    rule_path = f"/api/jobs/{job['id']}/alert-rule"
    builtin = (await api.call("GET", rule_path)).json()
    assert (builtin["scope"], builtin["failure_threshold"]) == ("builtin", 3)

    default = await api.call("PUT", "/api/alerts/rules/default", json={"failure_threshold": 5})
    assert default.json()["scope"] == "tenant"
    assert (await api.call("GET", rule_path)).json()["failure_threshold"] == 5
    assert (await api.call("GET", "/api/alerts/rules/default", who="bob")).json()["scope"] == (
        "builtin"
    )

    channel = (await api.call("POST", "/api/alerts/channels", json=HOOK)).json()
    own = await api.call(
        "PUT",
        rule_path,
        json={"failure_threshold": None, "on_critical": True, "channel_ids": [channel["id"]]},
    )
    assert own.status_code == 200, own.text
    assert own.json()["scope"] == "job"
    assert (await api.call("GET", rule_path)).json()["channel_ids"] == [channel["id"]]

    unknown = await api.call("PUT", rule_path, json={"channel_ids": ["nope"]})
    assert unknown.status_code == 422
    assert "channel_ids" in unknown.text
    bad = await api.call("PUT", rule_path, json={"failure_threshold": 0})
    assert bad.status_code == 422
    assert (await api.call("PUT", rule_path, who="bob", json={})).status_code == 404

    after = await api.call("DELETE", rule_path)
    assert (after.json()["scope"], after.json()["failure_threshold"]) == ("tenant", 5)
    again = await api.call("DELETE", "/api/alerts/rules/default")
    assert again.json()["scope"] == "builtin"


async def test_alert_lists_are_scoped_and_404_for_others(api: Api) -> None:
    assert (await api.call("GET", "/api/alerts")).json() == []
    assert (await api.call("GET", "/api/alerts/nope")).status_code == 404
    assert (await api.call("GET", "/api/alerts/nope/deliveries")).status_code == 404
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    resp = await api.call("GET", "/api/alerts", who="bob", params={"job_id": job["id"]})
    assert resp.status_code == 404
    assert (await api.call("GET", "/api/alerts", params={"status": "bogus"})).status_code == 422
