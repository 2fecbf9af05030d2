"""What an assistant reads about Cronicorn: the server's instructions and each tool's text.

The field constraints themselves are in each tool's input schema (generated from the API's
models); these texts explain the concepts behind them. Longer explanations are the
`cronicorn://docs/...` resources (`cronicorn/mcp/resources/*.md`).
"""

from __future__ import annotations

INSTRUCTIONS = """\
Cronicorn is an AI-driven HTTP job scheduler. A job is a plain-English `definition` of what \
to watch or do, plus one or more HTTP endpoints. At each run the scheduler's AI (or, without \
an AI key, a deterministic rules planner) decides which endpoints to call and how, calls them, \
then decides when the job runs next; a governor clamps that time into the job's \
[min_interval_ms, max_interval_ms] window. Every run records its plan, each endpoint's result \
and the next-run decision with its `source` (ai, ai_preliminary, baseline_cron, \
baseline_interval, backoff, default, paused, clamped_min, clamped_max).

Typical flow: create_job -> add_endpoint (one per URL) -> run_job_now -> list_runs / get_run \
to see what happened. Use add_message to tell the AI something about the job; it reads the \
job's messages on the next run. You only see the jobs of your own API key's tenant. Read the \
resources cronicorn://docs/concepts and cronicorn://docs/scheduling for details; \
cronicorn://jobs/{job_id}/runs shows a job's recent runs.

To have a human told when a job needs one: create_alert_channel (then test_alert_channel); \
without a rule, the built-in one alerts after 3 failed runs in a row, on recovery, when the \
AI asks to notify a user or pauses a job, and when a budget is spent (set_default_alert_rule \
or set_job_alert_rule change that). list_alerts shows the incidents. Tools that reveal a \
secret (a webhook's signing secret, the signing key) show it once and it stays in this \
conversation: say so to the user.
"""

_ID_NOTE = "Ids are the `id` fields returned by the create and list tools."
_PAGING = (
    "Newest first; `limit` is the page size, and passing the last item's id as `before` "
    "returns the next page."
)

CREATE_JOB = """\
Create a job in your tenant. `definition` is plain English and is what the AI reads at every \
run: say what to watch, what matters and how often it should run in which situation \
(e.g. "Poll the orders backlog; while it grows check every 30 s and call the scale-up hook"). \
Baseline schedule, used without AI and as the AI's reference: `cron` (5 fields, or 6 with \
seconds first, evaluated in `timezone`) or `interval_ms` (at most one of the two). \
`min_interval_ms` (default 10 s) and `max_interval_ms` (default 7 days) bound every \
next-run decision, AI or not. `status` "paused" creates it paused; `paused_until` pauses it \
until a time; `next_run_at` sets the first run (default: due at once). `default_headers` are \
sent to every endpoint and stored encrypted (values come back as "***"). \
`daily_token_budget` caps the AI tokens per day (then the rules planner takes over). \
A job does nothing useful until it has endpoints: call add_endpoint next."""

LIST_JOBS = f"""\
List your jobs (default: all but archived; `status` filters). {_PAGING}"""

GET_JOB = f"""\
Read one job: its schedule settings, status, `next_run_at`, `last_run_at`, \
`consecutive_failures`, AI token totals and `last_schedule` (the latest next-run decision \
with its `source` and `reasoning`). {_ID_NOTE}"""

UPDATE_JOB = """\
Change some fields of a job; fields you leave out keep their value, `null` clears a nullable \
field (e.g. `cron`, `interval_ms`, `paused_until`). Header values "***" keep the stored \
secret. Same rules as create_job: at most one of `cron` and `interval_ms`, \
min_interval_ms <= max_interval_ms. An archived job cannot be changed (409)."""

PAUSE_JOB = """\
Pause a job: it is not run until resume_job (runs already in progress finish). \
To pause until a time instead, use update_job with `paused_until`."""

RESUME_JOB = """\
Resume a paused job (also clears `paused_until`); it becomes due according to its schedule."""

RUN_JOB_NOW = """\
Make an active job due now and wake the idle engines: it runs within moments, exactly as a \
scheduled run would (the AI plans which endpoints to call, they are called, the next run is \
decided). It does not wait for the run: use list_runs or get_run afterwards to see the \
result. 409 if the job is paused or archived."""

ARCHIVE_JOB = """\
Archive a job: it is never run again, cannot be changed, and is hidden from list_jobs unless \
`status` is "archived". Its history (runs, messages, errors) is kept. There is no undo."""

ADD_ENDPOINT = """\
Add an HTTP endpoint to a job. The AI sees each endpoint's `name`, `description`, method, \
URL (without secrets) and `request_schema` and decides at each run whether and how to call \
it, so describe what the endpoint is for and when it should be called. `body` is the default \
JSON body; `request_schema` (JSON Schema) lets the AI pass parameters, which are checked \
against it. `headers` values and `bearer_token` are stored encrypted and never shown again \
("***"). `timeout_ms` bounds the whole call; `max_response_bytes` caps the stored body; \
`fire_and_forget` endpoints are called without waiting for the body. Destinations on \
private networks are refused unless the server operator allowed them."""

LIST_ENDPOINTS = f"""\
List a job's endpoints (secret values shown as "***"). {_ID_NOTE}"""

GET_ENDPOINT = f"""\
Read one endpoint (secret values shown as "***"). {_ID_NOTE}"""

UPDATE_ENDPOINT = """\
Change some fields of an endpoint; fields you leave out keep their value. Secrets (header \
values, `bearer_token`) given as "***" keep the stored value; `bearer_token: null` removes \
it. 409 if the job is archived."""

DELETE_ENDPOINT = """\
Delete an endpoint from its job (earlier runs keep their results). 409 if the job is \
archived."""

ADD_MESSAGE = """\
Add a message to a job's history (role "user" by default, or "system"). The AI reads the \
job's recent messages at every run, so this is how you steer it in plain words: "the sale \
starts at 9:00, check every minute until noon", "ignore 503s from /health during the backup \
window". 409 if the job is archived."""

LIST_MESSAGES = f"""\
List a job's messages: yours, the AI's notes, endpoint responses and scheduler notices, with \
their `source`. {_PAGING}"""

LIST_RUNS = f"""\
List a job's runs: status (running, completed, failed, aborted), plan source (ai, \
ai_repaired, rules), strategy, success/failure counts, escalation level, AI tokens and the \
next-run decision (`schedule`: next_run_at, source, reasoning, confidence). Use get_run for \
each endpoint's result. {_PAGING}"""

GET_RUN = """\
Read one run with every endpoint result: status, HTTP status code, attempts, duration, \
response size, the (possibly truncated) response body, and the error with its category when \
the call failed."""

LIST_ERRORS = f"""\
List the errors recorded for a job (AI, execution or scheduling problems) with the phase and \
a code. {_PAGING}"""

# --- alerts: channels, rules, incidents (docs/alerts.md) ---

_SHOWN_ONCE = (
    "The secret is shown once, in this answer only, and will appear in this conversation "
    "(the assistant's context and its logs): pass it straight to whoever configures the "
    "receiver, and rotate it if the conversation is not a safe place for it."
)

CREATE_ALERT_CHANNEL = f"""\
Add an alert channel: where Cronicorn tells a human that a job needs attention. `kind` \
"webhook" (a signed JSON POST to `url`), "slack" (a Slack-compatible incoming-webhook `url`, \
itself a credential) or "email" (`email_to`, needs SMTP on the server). The URL is stored \
encrypted and shown as `https://host/***`; a URL on a private address is refused unless the \
operator allowed it. `rate_limit_per_minute` caps the messages per minute (the rest wait). \
Without any rule, every enabled channel gets the built-in rule's alerts (3 failed runs in a \
row, recovery, AI notify_user, AI pause, budget spent). A webhook channel's answer carries its \
`signing_secret` (the HMAC key of `X-Cronicorn-Signature`). {_SHOWN_ONCE} \
Use test_alert_channel to check it works."""

LIST_ALERT_CHANNELS = f"""\
List your alert channels (URL shown as `https://host/***`, signing secret as "***"). \
{_PAGING}"""

GET_ALERT_CHANNEL = """\
Read one alert channel (URL shown as `https://host/***`, signing secret as "***"). \
`channel_id` is the `id` from create_alert_channel or list_alert_channels."""

UPDATE_ALERT_CHANNEL = """\
Change some fields of an alert channel (name, url, email_to, enabled, \
rate_limit_per_minute); fields you leave out keep their value. The kind cannot change. \
`enabled: false` silences the channel without losing its settings."""

DELETE_ALERT_CHANNEL = """\
Delete an alert channel: it receives nothing more, and rules naming it in `channel_ids` \
skip it. There is no undo."""

TEST_ALERT_CHANNEL = """\
Send a test message to a channel now (one attempt, event "test") and return the delivery: \
`status` delivered or failed, with `last_error` naming the problem (e.g. HTTP 404, blocked \
destination). `channel_ref` is the channel's id or its name. The delivery is also in the \
channel's log (list_alert_channel_deliveries)."""

ROTATE_ALERT_CHANNEL_SECRET = f"""\
Give a webhook channel a new signing secret; the old one stops verifying at once, so the \
receiver must switch to the new one. {_SHOWN_ONCE}"""

LIST_ALERT_CHANNEL_DELIVERIES = """\
A channel's delivery log, newest first, test messages included: per message the event \
(opened, recovered, test), `status` (pending, delivered, failed), `attempts`, `last_error` \
and, while pending, `next_attempt_at` (failed attempts are retried with backoff). \
`limit` is the page size."""

_RULE_FIELDS = """\
`failure_threshold` (alert after N consecutive failed runs; null: never), `on_critical` \
(a run escalated to critical), `on_recovery` (one message when a failing/critical incident \
resolves), `on_notify_user` (the AI asked to notify a human), `on_ai_pause` (the AI paused \
the job), `on_budget` (the job's daily AI token budget is spent), `channel_ids` (which \
channels; null: every enabled channel)."""

GET_DEFAULT_ALERT_RULE = """\
Read your tenant's default alert rule: when to alert and on which channels, for every job \
without a rule of its own. `scope` is "tenant" when you have set one, "builtin" otherwise \
(3 failed runs in a row, recovery, notify_user, AI pause, budget; every enabled channel)."""

SET_DEFAULT_ALERT_RULE = f"""\
Set your tenant's default alert rule (replaces it whole; fields you leave out take their \
defaults). Jobs with their own rule (set_job_alert_rule) keep it. Fields: {_RULE_FIELDS}"""

CLEAR_DEFAULT_ALERT_RULE = """\
Remove your tenant's default alert rule: jobs without their own rule go back to the \
built-in rule. Returns the rule now in effect."""

GET_JOB_ALERT_RULE = """\
Read the alert rule in effect for a job; `scope` says where it comes from: "job" (its own), \
"tenant" (your default) or "builtin"."""

SET_JOB_ALERT_RULE = f"""\
Give a job its own alert rule; it replaces the tenant default for this job only (whole: \
fields you leave out take their defaults). Fields: {_RULE_FIELDS}"""

CLEAR_JOB_ALERT_RULE = """\
Remove a job's own alert rule: the job follows the tenant default (or the built-in rule) \
again. Returns the rule now in effect."""

LIST_ALERTS = f"""\
List alert incidents. An incident is one problem of one job (kind failing, critical, \
notify_user, ai_paused or budget_spent): it opens once, further runs with the same problem \
only raise `occurrences` and `last_seen_at`, and it resolves on a healthy run. Filter with \
`job_id` and `status` (open, resolved). {_PAGING}"""

GET_ALERT = """\
Read one alert incident: kind, status, since when, occurrences, the last error and details \
(e.g. the AI's reason for notify_user). `alert_id` is the `id` from list_alerts."""

LIST_ALERT_DELIVERIES = """\
An incident's delivery log, oldest first: one entry per channel and message (opened, \
recovered) with `status` (pending, delivered, failed), `attempts`, `last_error` and \
`next_attempt_at`. Use it to see whether the humans were actually told."""

# --- the tenant's signing key for endpoint calls (docs/signing.md) ---

GET_SIGNING_KEY = f"""\
Read your tenant's signing key: every call to your endpoints carries \
`X-Cronicorn-Timestamp` and `X-Cronicorn-Signature: sha256=<hex>` (HMAC-SHA256 of \
"{{timestamp}}.{{body}}" with this secret) so receivers can check it came from Cronicorn. \
Returns `key_id`, `status` (active, revoked) and dates. The `secret` is included only the \
first time a key is shown (this call creates the key if there is none); afterwards it is null \
and only rotate_signing_key gives a new one. {_SHOWN_ONCE}"""

ROTATE_SIGNING_KEY = f"""\
Create a new signing secret for your endpoint calls. The old secret stops verifying at once: \
every run from now on is signed with the new one, so update your receivers. Also re-enables \
signing after revoke_signing_key. {_SHOWN_ONCE}"""

REVOKE_SIGNING_KEY = """\
Delete your tenant's signing secret: endpoint calls go out unsigned (receivers that verify \
will reject them) until rotate_signing_key creates a new key. No undo for the old secret."""
SET_HINT = """\
Steer a job without the AI: give exactly one of `interval_ms` (run every N ms) or \
`next_run_at` (run once at that ISO 8601 time, in the future), plus `ttl_ms` (how long the \
hint lives, default 1 hour) and a `reason` the AI will see. While it lives the hint wins \
over the AI's schedule (schedule source `hint`), below a pause and inside the job's \
min/max interval. Replaces any earlier hint; an idle active job is rescheduled at once. \
Returns the job with its `hint`. 409 if the job is archived."""

CLEAR_HINT = """\
Remove a job's hint: the AI and the baseline decide the schedule again from the next run. \
Returns the job. 409 if the job is archived."""

LIST_RUN_AI_SESSIONS = """\
Show exactly what the AI was asked and answered in one run: for each model exchange (phase \
plan or schedule) the messages sent (secrets masked), each raw reply with its validation \
errors and repair attempts, the parsed decision, tokens, cost in US dollars, latency and \
outcome. Runs that reused an earlier AI decision have none. Paginated: `limit`, and `after` \
= the last session id seen."""

LIST_DECISIONS = f"""\
List a job's AI decisions over time (runs in which the model was asked): why it was asked \
(`trigger`), the next run it chose with its reasoning and confidence, whether the model (not \
the rules fallback) made it, how many later runs reused it without asking, and its tokens \
and cost. {_PAGING}"""

GET_COST = """\
What your tenant spent on AI model calls this calendar month (UTC) and in total, in US \
dollars, and the monthly budget in force (when it is spent, the tenant's jobs use the \
rules planner until the month ends). Each job's own cost is in get_job (`cost`)."""
