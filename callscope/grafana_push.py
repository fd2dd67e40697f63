"""Upload dashboards and datasources to Grafana through its HTTP API (grafana-client).

The order: ``GET /api/health`` (is this Grafana?), the folder by title through
``GET /api/search?type=dash-folder`` (``POST /api/folders`` when missing), each datasource by
uid (``GET /api/datasources/uid/{uid}``, then ``POST /api/datasources`` or
``PUT /api/datasources/uid/{uid}``), each dashboard by uid (``GET /api/dashboards/uid/{uid}``,
then ``POST /api/dashboards/db`` with ``overwrite: true`` into the folder). What Grafana
already holds is left alone, so a second push writes nothing and says "unchanged" (a
datasource with secrets is re-sent every time: Grafana never returns them to compare).

Errors: 401 (the token is refused), 403 (the token lacks a permission), 404 (no Grafana API
at that URL) and other 4xx fail at once with Grafana's message; 5xx answers, timeouts and
connection failures are retried with exponential backoff, then fail naming the last cause.
The token is sent as ``Authorization: Bearer ...`` and never printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from callscope import __version__
from callscope.dashboards import (
    DEFAULT_FOLDER,
    DashboardFile,
    DatasourceSpec,
    backoff_delays,
    dashboard_payload,
    dashboard_unchanged,
    datasource_unchanged,
    load_dashboards,
    load_datasources,
)
from schemas.errors import CallscopeError, ConfigError

Action = Literal["created", "updated", "unchanged"]
_MESSAGE_MAX_CHARS = 200


class GrafanaPushError(CallscopeError):
    """Grafana refused or failed a request; the message names the request and the cause."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PushOptions(BaseModel):
    """What ``callscope dashboards push`` was asked to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="Grafana's root URL, with its sub-path when served under one.")
    token: SecretStr = Field(description="Service account (or API) token, sent as a Bearer token.")
    folder: str = Field(default=DEFAULT_FOLDER, min_length=1, description="Folder title; created when missing.")
    directory: Path
    datasources: bool = True
    retries: int = Field(default=3, ge=0, le=10, description="Retries of a request after a 5xx or network error.")
    backoff_secs: float = Field(default=0.5, ge=0.0, description="First retry delay, doubled each time.")
    timeout_secs: float = Field(default=10.0, gt=0.0)


@dataclass(frozen=True)
class Outcome:
    kind: Literal["folder", "datasource", "dashboard"]
    uid: str
    title: str
    action: Action


@dataclass
class PushReport:
    grafana_version: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return sum(1 for o in self.outcomes if o.action == action and o.kind != "folder")

    def summary(self) -> str:
        ds = sum(1 for o in self.outcomes if o.kind == "datasource")
        db = sum(1 for o in self.outcomes if o.kind == "dashboard")
        counts = ", ".join(f"{self.count(a)} {a}" for a in ("created", "updated", "unchanged"))
        return f"pushed {ds} datasource(s) and {db} dashboard(s): {counts}"


def _parse_url(url: str) -> tuple[str, str, int | None, str]:
    """(protocol, host, port, path prefix ending in '/' or empty) of Grafana's root URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([("--url", f"{url!r} is not an http:// or https:// URL")])
    if parts.username or parts.password:
        raise ConfigError([("--url", "credentials do not belong in the URL; give the token with --token")])
    if parts.query or parts.fragment:
        raise ConfigError([("--url", "Grafana's root URL takes no query or fragment")])
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError([("--url", str(exc))]) from None
    prefix = parts.path.strip("/")
    return parts.scheme, parts.hostname, port, f"{prefix}/" if prefix else ""


class GrafanaSession:
    """grafana-client with this command's retries and error messages."""

    def __init__(self, options: PushOptions, sleep: Callable[[float], None] = time.sleep) -> None:
        protocol, host, port, prefix = _parse_url(options.url)
        self._token = options.token.get_secret_value()
        self._base = f"{protocol}://{host}{f':{port}' if port else ''}/{prefix}"
        self._delays = backoff_delays(options.retries, options.backoff_secs)
        self._timeout = options.timeout_secs
        self._sleep = sleep
        # grafana-client's methods carry no annotations: its answers are JSON, checked where used.
        self.api: Any = GrafanaApi(
            auth=self._token,
            host=host,
            port=port,
            url_path_prefix=prefix,
            protocol=protocol,
            timeout=options.timeout_secs,
            user_agent=f"callscope/{__version__}",
        )

    @property
    def base_url(self) -> str:
        return self._base

    def close(self) -> None:
        self.api.client.s.close()

    def call(self, request: str, fn: Callable[[], Any], *, missing_ok: bool = False) -> Any:
        """``fn()``; ``None`` for a 404 when ``missing_ok``; retried on 5xx and network errors."""
        attempts = len(self._delays) + 1
        cause = ""
        for attempt in range(attempts):
            try:
                return fn()
            except GrafanaUnauthorizedError:
                raise GrafanaPushError(
                    f"{request}: 401 Unauthorized: Grafana refused the token (wrong, expired or revoked?)", status=401
                ) from None
            except GrafanaClientError as exc:
                if exc.status_code == 404 and missing_ok:
                    return None
                raise GrafanaPushError(self._client_error(request, exc), status=exc.status_code) from None
            except GrafanaServerError as exc:
                cause = f"Grafana answered {exc.status_code}: {self._message(exc)}"
            except GrafanaTimeoutError:
                cause = f"no answer within {self._timeout:g} s"
            except GrafanaException as exc:  # a transport error grafana-client wrapped
                cause = self._scrub(str(exc))
            except niquests.exceptions.RequestException as exc:
                cause = self._network_cause(exc)
            if attempt + 1 < attempts:
                self._sleep(self._delays[attempt])
        plural = "s" if attempts > 1 else ""
        raise GrafanaPushError(f"{request}: {cause} (gave up after {attempts} attempt{plural})")

    def _client_error(self, request: str, exc: GrafanaClientError) -> str:
        message = self._message(exc)
        if exc.status_code == 403:
            return (
                f"{request}: 403 Forbidden: the token lacks the permission for this request"
                f" (datasources need an Admin token, folders and dashboards an Editor): {message}"
            )
        if exc.status_code == 404:
            return (
                f"{request}: 404 Not Found: no Grafana API at {self._base}"
                " (give Grafana's root URL, with its sub-path if it is served under one)"
            )
        return f"{request}: {exc.status_code} {message}"

    def _message(self, exc: GrafanaException) -> str:
        response = exc.response
        text = response.get("message") if isinstance(response, dict) else response
        text = " ".join(str(text or "").split()) or "(no message)"
        return self._scrub(text[:_MESSAGE_MAX_CHARS])

    def _network_cause(self, exc: Exception) -> str:
        seen: Exception | BaseException | None = exc
        while seen is not None:
            if isinstance(seen, ConnectionRefusedError):
                return f"cannot connect to Grafana at {self._base}: connection refused"
            seen = seen.__cause__ or seen.__context__
        if isinstance(exc, niquests.exceptions.Timeout):
            return f"no answer within {self._timeout:g} s"
        return f"cannot reach Grafana at {self._base}: {self._scrub(str(exc))[:_MESSAGE_MAX_CHARS]}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def push(
    options: PushOptions,
    out: TextIO,
    *,
    environ: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """Upload the folder, datasources and dashboards; print one line per object to ``out``."""
    dashboards = load_dashboards(options.directory)
    datasources = load_datasources(options.directory, environ) if options.datasources else []
    session = GrafanaSession(options, sleep)
    try:
        health = session.call("GET /api/health", lambda: session.api.client.GET("/health"))
        version = str(health.get("version", "?")) if isinstance(health, dict) else "?"
        report = PushReport(grafana_version=version)
        print(f"Grafana {version} at {session.base_url}", file=out)
        folder = _ensure_folder(session, options.folder)
        report.outcomes.append(folder)
        print(f'folder "{folder.title}" (uid {folder.uid}): {folder.action}', file=out)
        for spec in datasources:
            outcome = _push_datasource(session, spec)
            report.outcomes.append(outcome)
            note = " (secrets are re-sent on every push)" if spec.has_secrets and outcome.action == "updated" else ""
            print(f'datasource {spec.uid} "{spec.name}": {outcome.action}{note}', file=out)
        for dashboard in dashboards:
            outcome = _push_dashboard(session, dashboard, folder.uid)
            report.outcomes.append(outcome)
            print(f'dashboard {dashboard.uid} "{dashboard.title}": {outcome.action}', file=out)
    finally:
        session.close()
    print(report.summary(), file=out)
    return report


def _find_folder(session: GrafanaSession, title: str) -> str | None:
    hits = session.call(
        "GET /api/search?type=dash-folder",
        lambda: session.api.search.search_dashboards(query=title, type_="dash-folder"),
    )
    for hit in hits if isinstance(hits, list) else []:
        if not isinstance(hit, dict) or hit.get("folderUid") or not hit.get("uid"):
            continue  # nested folders are not ours
        if str(hit.get("title", "")).casefold() == title.casefold():
            return str(hit["uid"])
    return None


def _ensure_folder(session: GrafanaSession, title: str) -> Outcome:
    uid = _find_folder(session, title)
    if uid is not None:
        return Outcome("folder", uid, title, "unchanged")
    try:
        created = session.call("POST /api/folders", lambda: session.api.folder.create_folder(title))
    except GrafanaPushError:
        # A retried create that had landed, or a folder made meanwhile: look again once.
        uid = _find_folder(session, title)
        if uid is None:
            raise
        return Outcome("folder", uid, title, "unchanged")
    if not isinstance(created, dict) or not created.get("uid"):
        raise GrafanaPushError("POST /api/folders: Grafana's answer has no folder uid")
    return Outcome("folder", str(created["uid"]), title, "created")


def _push_datasource(session: GrafanaSession, spec: DatasourceSpec) -> Outcome:
    path = f"/api/datasources/uid/{spec.uid}"
    current = session.call(
        f"GET {path}", lambda: session.api.datasource.get_datasource_by_uid(spec.uid), missing_ok=True
    )
    if current is None:
        try:
            session.call("POST /api/datasources", lambda: session.api.datasource.create_datasource(spec.body))
        except GrafanaPushError as exc:
            if exc.status == 409:
                raise GrafanaPushError(
                    f"{exc} (a datasource named {spec.name!r} exists with another uid: rename or delete it,"
                    f" or give {spec.path.name} its uid)"
                ) from None
            raise
        return Outcome("datasource", spec.uid, spec.name, "created")
    if isinstance(current, dict) and datasource_unchanged(spec, current):
        return Outcome("datasource", spec.uid, spec.name, "unchanged")
    session.call(f"PUT {path}", lambda: session.api.datasource.update_datasource_by_uid(spec.uid, spec.body))
    return Outcome("datasource", spec.uid, spec.name, "updated")


def _push_dashboard(session: GrafanaSession, dashboard: DashboardFile, folder_uid: str) -> Outcome:
    current = session.call(
        f"GET /api/dashboards/uid/{dashboard.uid}",
        lambda: session.api.dashboard.get_dashboard(dashboard.uid),
        missing_ok=True,
    )
    if isinstance(current, dict) and dashboard_unchanged(dashboard, folder_uid, current):
        return Outcome("dashboard", dashboard.uid, dashboard.title, "unchanged")
    payload = dashboard_payload(dashboard, folder_uid)
    session.call("POST /api/dashboards/db", lambda: session.api.dashboard.update_dashboard(payload))
    return Outcome("dashboard", dashboard.uid, dashboard.title, "created" if current is None else "updated")
