"""The shared edge: head checks, budgets, error rendering; API keys reloaded from their file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagellm_router.auth import KeyChecker, KeyReloader
from sagellm_router.config import AuthSettings, ConfigError, EdgeSettings, parse_settings
from sagellm_router.edge import Edge, render


def edge(keys: tuple[str, ...] = ("k1",), *, admin_keyed: bool = True, **limits: int) -> Edge:
    return Edge(EdgeSettings(**limits), KeyChecker(keys), 100, admin_keyed=admin_keyed)


@pytest.mark.parametrize(
    ("keys", "path", "headers", "length", "status"),
    [
        (("k1",), "/v1/completions", {"authorization": "Bearer k1"}, 10, None),
        (("k1",), "/v1/completions", {}, 10, 401),
        (("k1",), "/v1/completions", {"authorization": "Bearer k2"}, None, 401),
        (("k1",), "/v1/completions", {"authorization": "Bearer k1"}, 101, 413),
        (("k1",), "/health", {}, None, None),
        (("k1",), "/admin/status", {}, None, 401),
        ((), "/v1/models", {}, None, None),
        ((), "/admin/policy", {}, 5, 401),  # admin on the main port, no key configured
        ((), "/v1/completions", {}, 101, 413),
    ],
)
def test_check_head(
    keys: tuple[str, ...], path: str, headers: dict[str, str], length: int | None, status: int
) -> None:
    err = edge(keys).check_head(path, headers, length)
    assert (err.status if err else None) == status


def test_admin_without_keys_is_open_only_when_not_on_the_main_port() -> None:
    assert edge((), admin_keyed=False).check_head("/admin/policy", {}, 5) is None


def test_budgets_refuse_beyond_their_limits_and_free_on_release() -> None:
    e = edge(max_connections=2, max_buffered_bytes=10)
    assert [e.open_connection() for _ in range(3)] == [True, True, False]
    e.close_connection()
    assert e.open_connection()
    assert (e.reserve(6), e.reserve(5), e.reserve(4)) == (True, False, True)
    e.release(10)
    assert e.buffered == 0
    assert e.reserve(10)


def test_render_adds_connection_close_and_keeps_the_error_shape() -> None:
    err = edge().check_head("/v1/completions", {}, None)
    assert err is not None
    status, headers, body = render(err, close=True)
    assert (status, headers["Connection"]) == (401, "close")
    assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}


def test_keep_alive_above_75_seconds_is_refused() -> None:
    with pytest.raises(ConfigError, match="keepalive_s"):
        parse_settings("edge: {keepalive_s: 3630}")


def test_reloader_takes_a_changed_file_and_keeps_keys_when_it_is_unreadable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys"
    path.write_text("k1\n# comment\n\nk2\n")
    checker = KeyChecker(())
    reloader = KeyReloader(AuthSettings(api_keys_file=str(path)), checker)
    assert reloader.reload() is False  # the first read is not a change
    checker.check("Bearer k2")
    assert reloader.reload() is False  # same content
    path.write_text("k3\n")
    assert reloader.reload() is True
    checker.check("Bearer k3")
    with pytest.raises(Exception, match="invalid API key"):
        checker.check("Bearer k1")
    path.unlink()
    assert reloader.reload() is False
    checker.check("Bearer k3")  # kept
