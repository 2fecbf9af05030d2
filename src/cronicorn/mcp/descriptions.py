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
