from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from enduro.tools import FetchRefused, check_address, default_tools, make_fetch_tool
from enduro.tools.fetch import Resolver


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.8.8", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "non-global"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(ip: str, reason: str) -> None:
    with pytest.raises(FetchRefused, match=f"{reason} address") as info:
        check_address(ip, allow_private=False)
    assert ip in str(info.value)
    check_address(ip, allow_private=True)


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(ip: str) -> None:
    check_address(ip, allow_private=False)


def test_garbage_is_not_an_address() -> None:
    with pytest.raises(FetchRefused, match="not an IP address"):
        check_address("example.com", allow_private=True)


def _resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


async def _call(tool: BaseTool, url: str) -> ToolMessage:
    msg = await tool.ainvoke(
        {"name": "fetch_url", "args": {"url": url}, "id": "1", "type": "tool_call"}
    )
    assert isinstance(msg, ToolMessage)
    return msg


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.5"], ["93.184.215.14", "169.254.169.254"], ["::ffff:127.0.0.1"]],
)
async def test_host_resolving_to_any_private_address_is_refused(answers: list[str]) -> None:
    # The resolver is faked, so nothing is ever connected to.
    tool = make_fetch_tool(resolver=_resolver({"internal.example": answers}))
    msg = await _call(tool, "http://internal.example/admin")
    assert msg.status == "error"
    assert "Refused to connect" in msg.content
    assert "Only public internet addresses" in msg.content


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://example.com/file", "scheme 'ftp' is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ],
)
async def test_bad_urls_are_refused_before_connecting(url: str, expected: str) -> None:
    msg = await _call(make_fetch_tool(), url)
    assert msg.status == "error"
    assert expected in msg.content


async def test_unresolvable_host_is_a_tool_error() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    msg = await _call(make_fetch_tool(resolver=fail), "https://no-such-host.invalid/")
    assert msg.status == "error"
    assert "Could not resolve host 'no-such-host.invalid'" in msg.content


def test_default_tools() -> None:
    names = [t.name for t in default_tools()]
    assert names == [
        "read_file",
        "write_file",
        "append_file",
        "list_files",
        "fetch_url",
        "ask_human",
    ]
    with_post = [t.name for t in default_tools(post=True)]
    assert with_post == [*names, "http_post"]
