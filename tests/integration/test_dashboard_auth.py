"""Who may talk to the dashboard: the bind rule, the token, the login cookie, the Host check.

The rules sit in front of storage: the full token walk runs on both engines, the rest on
SQLite.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx

from clikit import cli_env
from dashkit import Dashboard, run_dashboard, seed
from fakellm import ScriptedLLM


def test_a_non_loopback_bind_without_a_token_refuses_to_start(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = cli_env(llm, tmp_path)
    db = str(tmp_path / "e.sqlite")
    for host in ("0.0.0.0", "::"):
        done = run_dashboard(db, env, "--host", host)
        assert done.returncode == 2, done.stderr
        assert "not a loopback address" in done.stderr and "token" in done.stderr
        assert "Traceback" not in done.stderr
    short = run_dashboard(db, {**env, "ENDURO_DASHBOARD_TOKEN": "short"}, "--host", "0.0.0.0")
    assert short.returncode == 2 and "at least 16" in short.stderr
    down = run_dashboard("postgresql://postgres@127.0.0.1:1/x", env)
    assert down.returncode == 2 and "cannot connect to PostgreSQL" in down.stderr
    assert "dashboard on" not in down.stderr and "Traceback" not in down.stderr
    # 127.0.0.0/8 is loopback: no token needed there.
    with Dashboard(db, env, "--host", "127.0.0.2") as dash:
        assert dash.url.startswith("http://127.0.0.2:")
        assert httpx.get(dash.url + "api/threads").status_code == 200


def test_bound_beyond_loopback_every_request_needs_the_token(
    db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    db = db_url
    [tid] = asyncio.run(seed(db, 1))
    env = {**cli_env(llm, tmp_path), "ENDURO_DASHBOARD_TOKEN": token}
    with Dashboard(db, env, "--host", "0.0.0.0") as dash:
        port = dash.url.rsplit(":", 1)[1].rstrip("/")
        # Reached over loopback, still refused: the rule is the bind, not the caller.
        base = f"http://127.0.0.1:{port}"
        bodies: list[str] = []
        with httpx.Client(base_url=base) as anon:
            for path in ("/api/threads", f"/api/threads/{tid}", "/openapi.json"):
                r = anon.get(path)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            wrong = anon.get("/api/threads", headers={"Authorization": "Bearer " + "x" * 32})
            assert wrong.status_code == 401
            assert anon.post(f"/api/threads/{tid}/cancel").status_code == 401
            page = anon.get(f"/threads/{tid}")
            assert page.status_code == 303 and page.headers["location"].startswith("/login")
            assert anon.get("/static/app.css").status_code == 200
            login = anon.get("/login")
            assert login.status_code == 200
            bodies.append(login.text)

        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth) as api:
            listed = api.get("/api/threads")
            assert listed.status_code == 200 and listed.json()["items"][0]["thread_id"] == tid
            # The bearer is proof enough for a POST: no browser adds it by itself.
            assert api.post(f"/api/threads/{tid}/cancel").json()["outcome"] == "cancelled"
            bodies += [listed.text, api.get("/openapi.json").text]

        with httpx.Client(base_url=base) as browser:
            form = browser.get("/login")
            csrf = browser.cookies["enduro_csrf"]
            bad = browser.post("/login", data={"token": "x" * 24, "csrf": csrf, "next": "/"})
            assert bad.status_code == 303 and bad.headers["location"] == "/login?error=token"
            forged = browser.post("/login", data={"token": token, "csrf": "f" * 32})
            assert forged.headers["location"] == "/login?error=expired"
            ok = browser.post(
                "/login", data={"token": token, "csrf": csrf, "next": "//evil.example/x"}
            )
            assert ok.status_code == 303 and ok.headers["location"] == "/"
            cookie = ok.headers["set-cookie"]
            assert "enduro_session=" in cookie and "HttpOnly" in cookie
            assert "samesite=strict" in cookie.lower() and token not in cookie
            for path in ("/", f"/threads/{tid}", "/api/threads"):
                r = browser.get(path)
                assert r.status_code == 200, path
                bodies.append(r.text)
            # A cookie session still needs the CSRF header for a POST.
            assert browser.post(f"/api/threads/{tid}/cancel").status_code == 403
            assert browser.post("/logout").status_code == 303
            assert browser.get("/api/threads").status_code == 401
            bodies.append(form.text)
        assert all(token not in body for body in bodies)
    assert token not in dash.stderr


def test_every_answer_has_a_csp_and_a_foreign_host_is_refused(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = cli_env(llm, tmp_path)
    with (
        Dashboard(str(tmp_path / "e.sqlite"), env) as dash,
        httpx.Client(base_url=dash.url) as client,
    ):
        assert client.head("/").status_code == 200
        for path in ("/", "/threads/x", "/api/threads", "/static/thread.js"):
            r = client.get(path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
        # DNS rebinding: a page of another site resolving its name to 127.0.0.1.
        rebound = client.get("/api/threads", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
        assert client.get("/api/threads", headers={"Host": "localhost"}).status_code == 200
