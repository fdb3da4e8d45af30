"""`enduro dashboard`: a web page and JSON API over the same database as the CLI.

- `forecast` lives in `enduro.forecast` (the status JSON and webhook events carry it too);
- `source`: every read and write of storage the dashboard makes (one place to switch to
  `enduro.Client`);
- `api`: the JSON API (/api/…, documented at /openapi.json), with Server-Sent Events;
- `actions`: actions that start work (resume with raised limits);
- `security`: bind rules, token and session cookie, CSRF, security headers;
- `app`: pages, login and static assets; `cli`: the `enduro dashboard` command.
"""
