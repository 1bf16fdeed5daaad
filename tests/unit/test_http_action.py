"""The http action against a real HTTP server on loopback (the standard library's)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from maintkit.actions.base import StepContext
from maintkit.actions.http import Http, HttpParams
from maintkit.model.hosts import Host
from maintkit.secrets import Redactor


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"Fatal error: Uncaught Exception")
            return
        if self.path == "/private" and self.headers.get("Authorization") != "Basic dTpw":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Demo shop</h1> add to cart")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def check(**params: object):
    ctx = StepContext(Host("h", connection="local"), None, {}, Redactor(), "run")  # type: ignore[arg-type]
    return Http().run(HttpParams.model_validate(params), ctx)


def test_passing_check_reports_status_and_latency(server):
    result = check(url=f"{server}/", contains="add to cart")
    assert not result.failed
    assert result.data["status"] == 200
    assert result.data["latency_ms"] >= 0


def test_wrong_status_and_forbidden_text_fail_with_reasons(server):
    result = check(url=f"{server}/broken", not_contains="Fatal error")
    assert result.failed
    assert "status 500" in result.msg and "Fatal error" in result.msg


def test_missing_text_fails(server):
    result = check(url=f"{server}/", contains=["Demo shop", "checkout"])
    assert result.failed and "'checkout'" in result.msg and "Demo shop" not in result.msg


def test_expected_error_status_passes(server):
    assert not check(url=f"{server}/broken", status=500).failed


def test_basic_auth(server):
    assert check(url=f"{server}/private").failed
    assert not check(url=f"{server}/private", auth={"username": "u", "password": "p"}).failed


def test_latency_budget(server):
    result = check(url=f"{server}/", max_ms=0.0001)
    assert result.failed and "limit" in result.msg


def test_unreachable_url_fails_cleanly():
    result = check(url="http://127.0.0.1:9/", request_timeout=2)
    assert result.failed and "127.0.0.1:9" in result.msg


def test_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        HttpParams(url="ftp://example")
