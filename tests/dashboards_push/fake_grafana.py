"""A small stand-in for Grafana's HTTP API that records every request.

It answers the endpoints ``callscope dashboards push`` uses the way Grafana 11 does
(status codes, the JSON shapes, ``message`` in errors), keeps folders, datasources and
dashboards in memory, checks the Bearer token on everything but ``/api/health``, and can be
told to refuse (403) or fail (503) chosen requests. It listens on 127.0.0.1 on a port the OS
hands out, under an optional sub-path, and is probed over HTTP before a test uses it.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

VERSION = "11.3.0"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # under the API root, e.g. /api/folders
    query: dict[str, list[str]]
    authorization: str | None
    body: Any

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class GrafanaState:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> folder
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> stored
    dashboards: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)  # uid -> (model, folder uid)


class FakeGrafana:
    def __init__(self, token: str, *, prefix: str = "") -> None:
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.state = GrafanaState()
        self.requests: list[Recorded] = []
        self.forbidden: set[str] = set()  # "METHOD /api/path" answered 403
        self.failures: dict[str, int] = {}  # "METHOD /api/path" -> 503 answers left (-1: always)
        self.stalled: set[str] = set()  # "METHOD /api/path" answered only once the server stops
        self.provisioned: set[str] = set()  # dashboard uids provisioned from files on the server
        self._release = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-grafana", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    def start(self, timeout_secs: float = 5.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_secs
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # polling interval, bounded by the deadline
        with self._lock:
            self.requests.clear()  # the probe is not the test's

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def lines(self) -> list[str]:
        with self._lock:
            return [r.line for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def add_folder(self, title: str, uid: str) -> None:
        self.state.folders[uid] = {"id": next(self._ids), "uid": uid, "title": title}

    # -- request handling, called from the server's threads --

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        if not parts.path.startswith(self.prefix + "/api/"):
            return 404, None  # a page, not the API
        path = parts.path[len(self.prefix) :]
        body = json.loads(raw_body) if raw_body else None
        auth = headers.get("authorization")
        if f"{method} {path}" in self.stalled:
            self._release.wait(timeout=10)  # a Grafana that does not answer in time
        with self._lock:
            self.requests.append(Recorded(method, path, parse_qs(parts.query), auth, body))
            key = f"{method} {path}"
            if path == "/api/health":
                return 200, {"commit": "0000000", "database": "ok", "version": VERSION}
            if auth != f"Bearer {self.token}":
                return 401, {"message": "invalid API key", "traceID": ""}
            if key in self.forbidden:
                return 403, {"message": "You'll need additional permissions to perform this action."}
            left = self.failures.get(key, 0)
            if left:
                self.failures[key] = left - 1 if left > 0 else left
                return 503, {"message": "database is locked"}
            return self._route(method, path, parse_qs(parts.query), body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        segments = path.split("/")[2:]  # after "/api"
        if method == "GET" and segments == ["search"]:
            return 200, self._search(query)
        if method == "POST" and segments == ["folders"]:
            return self._create_folder(body)
        if segments[:2] == ["datasources", "uid"] and len(segments) == 3:
            if method == "GET":
                found = self.state.datasources.get(segments[2])
                return (200, copy.deepcopy(found)) if found else (404, {"message": "Data source not found"})
            if method == "PUT":
                return self._update_datasource(segments[2], body)
        if method == "POST" and segments == ["datasources"]:
            return self._create_datasource(body)
        if method == "GET" and segments[:2] == ["dashboards", "uid"] and len(segments) == 3:
            return self._get_dashboard(segments[2])
        if method == "POST" and segments == ["dashboards", "db"]:
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        text = query.get("query", [""])[0].casefold()
        if query.get("type", [""])[0] != "dash-folder":
            return []
        return [
            {"id": f["id"], "uid": f["uid"], "title": f["title"], "type": "dash-folder", "url": f"/dashboards/f/{u}/"}
            for u, f in sorted(self.state.folders.items())
            if text in f["title"].casefold()
        ]

    def _create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        title = body.get("title", "")
        if any(f["title"].casefold() == title.casefold() for f in self.state.folders.values()):
            return 409, {"message": "a folder with the same name already exists"}
        uid = body.get("uid") or f"gen{next(self._ids):04d}"
        self.add_folder(title, uid)
        return 200, {**self.state.folders[uid], "url": f"/dashboards/f/{uid}/", "version": 1}

    def _stored_datasource(self, body: dict[str, Any], ds_id: int, version: int) -> dict[str, Any]:
        stored: dict[str, Any] = {
            "access": "proxy",
            "url": "",
            "user": "",
            "database": "",
            "basicAuth": False,
            "basicAuthUser": "",
            "withCredentials": False,
            "isDefault": False,
            "jsonData": {},
            "readOnly": False,
        }
        stored.update({k: copy.deepcopy(v) for k, v in body.items() if k != "secureJsonData"})
        stored.update(
            id=ds_id,
            orgId=1,
            version=version,
            typeLogoUrl="",
            secureJsonFields=dict.fromkeys(body.get("secureJsonData") or {}, True),
        )
        return stored

    def _create_datasource(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(d["name"] == body.get("name") for d in self.state.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        if not body.get("uid") or body["uid"] in self.state.datasources:
            return 409, {"message": "data source with the same uid already exists"}
        stored = self._stored_datasource(body, next(self._ids), 1)
        self.state.datasources[body["uid"]] = stored
        return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource added", "name": stored["name"]}

    def _update_datasource(self, uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        current = self.state.datasources.get(uid)
        if current is None:
            return 404, {"message": "Data source not found"}
        stored = self._stored_datasource(body, current["id"], current["version"] + 1)
        self.state.datasources[uid] = stored
        return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource updated", "name": stored["name"]}

    def _get_dashboard(self, uid: str) -> tuple[int, Any]:
        if uid not in self.state.dashboards:
            return 404, {"message": "Dashboard not found"}
        model, folder_uid = self.state.dashboards[uid]
        folder = self.state.folders.get(folder_uid, {})
        meta = {"folderUid": folder_uid, "folderTitle": folder.get("title", "General"), "provisioned": False}
        return 200, {"dashboard": copy.deepcopy(model), "meta": meta}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        model = dict(body.get("dashboard") or {})
        uid, folder_uid = model.get("uid"), body.get("folderUid", "")
        if not uid or not model.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        if folder_uid and folder_uid not in self.state.folders:
            return 400, {"message": "folder not found"}
        if uid in self.provisioned:
            return 400, {"message": "Cannot save provisioned dashboard"}
        previous = self.state.dashboards.get(uid)
        if previous is not None and not body.get("overwrite"):
            return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
        version = previous[0]["version"] + 1 if previous else 1
        ds_id = previous[0]["id"] if previous else next(self._ids)
        model.update(id=ds_id, version=version)
        self.state.dashboards[uid] = (model, folder_uid)
        return 200, {"id": ds_id, "uid": uid, "url": f"/d/{uid}/x", "status": "success", "version": version}


def _handler(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = grafana.handle(self.command, self.path, headers, raw)
            if answer is None:
                data, ctype = b"<html><body>404 page not found</body></html>", "text/html"
            else:
                data, ctype = json.dumps(answer).encode(), "application/json"
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the stalled requests)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
