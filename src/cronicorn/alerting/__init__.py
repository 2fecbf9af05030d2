"""Alert delivery: channel senders (webhook, Slack, SMTP) and the dispatcher task that turns
queued run facts into incidents and sends their messages with retries (docs/alerts.md).

The rules themselves are pure and live in `cronicorn.domain.alerts`; user-facing operations
(channels, rules, the delivery log) in `cronicorn.service.alerts`.
"""
