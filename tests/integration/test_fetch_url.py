"""fetch_url against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from enduro.tools import fetch, make_fetch_tool

HTML = b"""<!doctype html><html><head><title>Test   Page</title>
<style>body { color: red }</style><script>var secret = "SCRIPT-TEXT";</script></head>
<body><h1>Hello</h1>   <p>First
   paragraph.</p><noscript>NOSCRIPT-TEXT</noscript><p>Second</p></body></html>"""
HUGE_SIZE = 3_000_000


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path
        if path == "/html":
            self._send(200, "text/html; charset=utf-8", HTML)
        elif path == "/json":
            self._send(200, "application/json", json.dumps({"answer": 42}).encode())
        elif path == "/png":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        elif path == "/huge":
            self._send(200, "text/plain", b"a" * HUGE_SIZE)
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/hop/{left - 1}" if left > 0 else "/html")
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/to-internal-name":
            self._redirect("http://metadata.internal/computeMetadata/v1/")
        elif path == "/slow":
            time.sleep(2)
            self._send(200, "text/plain", b"too late")
        elif path == "/drip":
            self._drip()
        elif path == "/echo-host":
            self._send(200, "text/plain", f"host={self.headers['Host']}".encode())
        else:
            self._send(404, "text/plain", b"not here")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client hangs up once it reaches its byte cap.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self) -> None:
        # Each byte arrives well within a per-read timeout; only a total deadline stops it.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "40")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _fetch(tool: BaseTool, url: str) -> ToolMessage:
    call = {"name": "fetch_url", "args": {"url": url}, "id": "call-1", "type": "tool_call"}
    msg = await tool.ainvoke(call)
    assert isinstance(msg, ToolMessage)
    return msg


@pytest.fixture
def local_tool() -> BaseTool:
    return make_fetch_tool(allow_private=True, max_bytes=100_000, timeout=5.0)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_default_policy_refuses_loopback(base_url: str, host: str) -> None:
    url = base_url.replace("127.0.0.1", host) + "/html"
    msg = await _fetch(make_fetch_tool(), url)
    assert msg.status == "error"
    assert "loopback address" in msg.text


async def test_html_becomes_readable_text(base_url: str, local_tool: BaseTool) -> None:
    msg = await _fetch(local_tool, f"{base_url}/html")
    assert msg.status == "success"
    assert msg.text.startswith(
        f"URL: {base_url}/html\nStatus: 200 OK\nContent-Type: text/html; charset=utf-8\n\n"
    )
    assert "Title: Test Page" in msg.text
    assert "Hello\nFirst paragraph.\nSecond" in msg.text
    for hidden in ("SCRIPT-TEXT", "NOSCRIPT-TEXT", "color: red"):
        assert hidden not in msg.text


async def test_json_passes_through(base_url: str, local_tool: BaseTool) -> None:
    msg = await _fetch(local_tool, f"{base_url}/json")
    assert msg.status == "success"
    assert msg.text.endswith('{"answer": 42}')


async def test_binary_content_type_is_refused(base_url: str, local_tool: BaseTool) -> None:
    msg = await _fetch(local_tool, f"{base_url}/png")
    assert msg.status == "error"
    assert "'image/png' is not text" in msg.text


async def test_huge_body_is_truncated(base_url: str) -> None:
    tool = make_fetch_tool(allow_private=True, max_bytes=50_000, max_chars=200_000)
    msg = await _fetch(tool, f"{base_url}/huge")
    assert msg.status == "success"
    assert msg.text.count("a") >= 50_000
    assert "a" * 50_001 not in msg.text
    assert "first 50000 bytes" in msg.text


async def test_output_is_capped_at_max_chars(base_url: str) -> None:
    tool = make_fetch_tool(allow_private=True, max_chars=1_000)
    msg = await _fetch(tool, f"{base_url}/huge")
    assert msg.status == "success"
    assert "[Truncated: showing the first 1000 of" in msg.text
    assert len(msg.text) < 1_200


async def test_redirects_are_followed(base_url: str, local_tool: BaseTool) -> None:
    msg = await _fetch(local_tool, f"{base_url}/hop/2")
    assert msg.status == "success"
    assert msg.text.startswith(f"URL: {base_url}/html\n")
    assert "First paragraph." in msg.text


async def test_too_many_redirects(base_url: str, local_tool: BaseTool) -> None:
    # /hop/N answers with N + 1 redirects before the page.
    assert (await _fetch(local_tool, f"{base_url}/hop/4")).status == "success"
    for path in ("/hop/5", "/loop"):
        msg = await _fetch(local_tool, f"{base_url}{path}")
        assert msg.status == "error"
        assert "Too many redirects (more than 5)" in msg.text


async def test_http_error_status(base_url: str, local_tool: BaseTool) -> None:
    msg = await _fetch(local_tool, f"{base_url}/missing")
    assert msg.status == "error"
    assert "HTTP 404 Not Found" in msg.text


@pytest.fixture
def loopback_is_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the default policy reach the test server, and nothing else private."""
    real = fetch.check_address

    def check(ip: str, allow_private: bool) -> None:
        if ip != "127.0.0.1":
            real(ip, allow_private)

    monkeypatch.setattr(fetch, "check_address", check)


@pytest.mark.usefixtures("loopback_is_trusted")
@pytest.mark.parametrize("path", ["/to-metadata", "/to-internal-name"])
async def test_every_redirect_hop_is_checked(base_url: str, path: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"metadata.internal": ["169.254.169.254"]}[host]

    tool = make_fetch_tool(resolver=resolve)
    assert (await _fetch(tool, f"{base_url}/json")).status == "success"
    msg = await _fetch(tool, f"{base_url}{path}")
    assert msg.status == "error"
    assert "Refused to connect to 169.254.169.254: it is a link-local address" in msg.text


async def test_connects_to_the_checked_address_not_a_fresh_lookup(base_url: str) -> None:
    # "pinned.test" exists only in this resolver; a second lookup by httpx would fail.
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    port = base_url.rsplit(":", 1)[1]
    tool = make_fetch_tool(allow_private=True, resolver=resolve)
    msg = await _fetch(tool, f"http://pinned.test:{port}/echo-host")
    assert msg.status == "success"
    assert msg.text.startswith(f"URL: http://pinned.test:{port}/echo-host\n")
    assert msg.text.endswith(f"host=pinned.test:{port}")


async def test_slow_response_times_out(base_url: str) -> None:
    tool = make_fetch_tool(allow_private=True, timeout=0.3)
    started = time.monotonic()
    msg = await _fetch(tool, f"{base_url}/slow")
    assert time.monotonic() - started < 1.5
    assert msg.status == "error"
    assert "Timed out" in msg.text


async def test_timeout_covers_the_whole_download(base_url: str) -> None:
    tool = make_fetch_tool(allow_private=True, timeout=0.5)
    started = time.monotonic()
    msg = await _fetch(tool, f"{base_url}/drip")
    assert time.monotonic() - started < 2
    assert msg.status == "error"
    assert "Timed out after 0.5s" in msg.text
