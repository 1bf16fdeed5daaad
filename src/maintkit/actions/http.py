"""``http``: a smoke check from the control node, the way a customer's browser would see the site.

Why from the control node: the check must cross the same network path as the shop's visitors, and
it must not depend on tools being installed on the server. Uses the standard library only.
"""

from __future__ import annotations

import base64
import ssl
import time
import urllib.error
import urllib.request
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult

BODY_LIMIT = 1024 * 1024  # bytes of the body read for `contains` checks


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str


class HttpParams(ActionParams):
    url: str = Field(description="URL to request (http or https).")
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = Field(
        "GET", description="HTTP method."
    )
    status: list[int] = Field(default_factory=lambda: [200], description="Status codes that pass.")
    contains: list[str] = Field(default_factory=list, description="Texts the body must contain.")
    not_contains: list[str] = Field(default_factory=list, description="Texts the body must not contain.")
    max_ms: float | None = Field(None, description="Fail when the response takes longer (milliseconds).")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    auth: BasicAuth | None = Field(None, description="HTTP basic auth: {username, password}.")
    body: str | None = Field(None, description="Request body.")
    request_timeout: float = Field(30.0, description="Seconds to wait for the response.")
    follow_redirects: bool = Field(True, description="Follow 3xx redirects.")
    validate_certs: bool = Field(True, description="Verify TLS certificates.")

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many_status(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value

    @field_validator("contains", "not_contains", mode="before")
    @classmethod
    def _one_or_many_text(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _request(p: HttpParams) -> tuple[int, bytes, float]:
    """Given the parameters, perform the request; return (status, body prefix, elapsed ms)."""
    headers = dict(p.headers)
    if p.auth:
        token = base64.b64encode(f"{p.auth.username}:{p.auth.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = p.body.encode() if p.body is not None else None
    request = urllib.request.Request(p.url, data=data, headers=headers, method=p.method)  # noqa: S310
    handlers: list[urllib.request.BaseHandler] = []
    if not p.follow_redirects:
        handlers.append(_NoRedirect())
    if p.url.startswith("https://") and not p.validate_certs:
        handlers.append(urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))  # noqa: S323
    opener = urllib.request.build_opener(*handlers)
    started = time.perf_counter()
    try:
        with opener.open(request, timeout=p.request_timeout) as response:
            body = response.read(BODY_LIMIT)
            status = response.status
    except urllib.error.HTTPError as error:  # 4xx/5xx still carry a body worth checking
        body = error.read(BODY_LIMIT)
        status = error.code
    return status, body, (time.perf_counter() - started) * 1000


class Http(Action):
    name = "http"
    summary = "Smoke-check a URL from the control node: status, body contents, latency."
    Params = HttpParams
    shorthand = "url"
    local_only = True

    def plan(self, params: HttpParams, ctx: StepContext) -> list[str]:
        return [f"{params.method} {params.url} (from the control node), expect status {params.status}"]

    def run(self, params: HttpParams, ctx: StepContext) -> ActionResult:
        try:
            status, raw, elapsed_ms = _request(params)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            return ActionResult(failed=True, msg=f"{params.method} {params.url}: {reason}")
        body = raw.decode("utf-8", "replace")
        problems = []
        if status not in params.status:
            problems.append(f"status {status}, expected {params.status}")
        problems += [f"body does not contain {text!r}" for text in params.contains if text not in body]
        problems += [f"body contains {text!r}" for text in params.not_contains if text in body]
        if params.max_ms is not None and elapsed_ms > params.max_ms:
            problems.append(f"took {elapsed_ms:.0f} ms, limit {params.max_ms:.0f} ms")
        return ActionResult(
            failed=bool(problems),
            stdout=body[-4096:],
            msg="; ".join(problems) or f"{status} in {elapsed_ms:.0f} ms",
            data={"status": status, "latency_ms": round(elapsed_ms, 1), "url": params.url},
        )
