"""The Grafana files ``callscope dashboards push`` uploads, read and checked without I/O to Grafana.

- Dashboards: ``DIR/*.json``, one dashboard model per file (the form Grafana's "Export" and the
  generator under ``dashboards/grafana/`` write; an export wrapped as ``{"dashboard": {...}}`` is
  accepted too). Each needs a ``uid`` (Grafana's rule: at most 40 of ``[A-Za-z0-9_-]``) and a
  ``title``; uids are unique across the files. The instance-specific ``id`` is dropped.
- Datasources: ``DIR/provisioning/datasources/*.yaml``, Grafana's provisioning format
  (``apiVersion: 1``, ``datasources: [...]``). Each needs ``name``, ``type`` and ``uid`` (the push
  creates or updates by uid). Values are expanded the way Grafana's provisioning does:
  ``$NAME``, ``${NAME}`` and ``$__env{NAME}`` from the environment, ``$$`` for a literal ``$``;
  a variable that is not set is an error naming it (set it empty to mean empty).
  ``$__file{...}`` and ``$__vault{...}`` name files or secrets on the Grafana server and are refused.

Every problem is a :class:`~schemas.errors.ConfigError` naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from schemas.errors import ConfigError

DEFAULT_FOLDER = "callscope"
DATASOURCES_SUBDIR = Path("provisioning") / "datasources"
PUSH_MESSAGE = "pushed by callscope dashboards push"

_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_VARIABLE = re.compile(
    r"\$\$"  # a literal $
    r"|\$__(?P<macro>[A-Za-z]+)\{(?P<arg>[^}]*)\}"  # $__env{NAME}, $__file{...}, $__vault{...}
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)

# Provisioning keys the datasource API takes as they are, with the value Grafana stores when absent.
_DATASOURCE_FIELDS: dict[str, Any] = {
    "name": "",
    "type": "",
    "uid": "",
    "access": "proxy",
    "url": "",
    "user": "",
    "database": "",
    "basicAuth": False,
    "basicAuthUser": "",
    "withCredentials": False,
    "isDefault": False,
    "jsonData": {},
}
# Deprecated top-level secrets of the provisioning format, moved into secureJsonData.
_LEGACY_SECRETS = ("password", "basicAuthPassword")
# Fields Grafana adds to a stored dashboard that the files do not carry.
_DASHBOARD_INSTANCE_FIELDS = ("id", "version")


@dataclass(frozen=True)
class DashboardFile:
    """One dashboard model to post, by uid."""

    path: Path
    uid: str
    title: str
    model: dict[str, Any]


@dataclass(frozen=True)
class DatasourceSpec:
    """One datasource as the API's create/update body (``secureJsonData`` included when given)."""

    path: Path
    uid: str
    name: str
    body: dict[str, Any]

    @property
    def has_secrets(self) -> bool:
        return bool(self.body.get("secureJsonData"))


def default_dir() -> Path:
    """``dashboards/grafana`` beside this package (the source tree's, or the one the wheel installs), else
    of the working directory."""
    beside_package = Path(__file__).resolve().parent.parent / "dashboards" / "grafana"
    return beside_package if beside_package.is_dir() else Path("dashboards") / "grafana"


def load_dashboards(directory: Path) -> list[DashboardFile]:
    """The dashboards under ``directory`` in file-name order; at least one."""
    if not directory.is_dir():
        raise ConfigError([("--dir", f"{directory} is not a directory")])
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ConfigError([("--dir", f"no dashboards (*.json) in {directory}")])
    out: list[DashboardFile] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError([(str(path), f"not a readable JSON file: {exc}")]) from None
        if isinstance(doc, dict) and isinstance(doc.get("dashboard"), dict):
            doc = doc["dashboard"]
        if not isinstance(doc, dict):
            raise ConfigError([(str(path), "a dashboard file holds one JSON object")])
        uid, title = doc.get("uid"), doc.get("title")
        if not isinstance(uid, str) or not _UID.fullmatch(uid):
            raise ConfigError([(str(path), f"uid {uid!r} is not 1-40 of A-Z a-z 0-9 _ -")])
        if not isinstance(title, str) or not title.strip():
            raise ConfigError([(str(path), "the dashboard has no title")])
        if uid in seen:
            raise ConfigError([(str(path), f"uid {uid!r} is also the uid of {seen[uid]}")])
        seen[uid] = path
        model = {k: v for k, v in doc.items() if k not in _DASHBOARD_INSTANCE_FIELDS}
        out.append(DashboardFile(path=path, uid=uid, title=title, model=model))
    return out


def load_datasources(directory: Path, environ: Mapping[str, str]) -> list[DatasourceSpec]:
    """The datasources of ``directory/provisioning/datasources/*.y{a,}ml``; none when that folder is absent."""
    folder = directory / DATASOURCES_SUBDIR
    if not folder.is_dir():
        return []
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    out: list[DatasourceSpec] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for spec in _datasources_of(path, environ):
            if spec.uid in seen:
                raise ConfigError([(str(path), f"datasource uid {spec.uid!r} is also in {seen[spec.uid]}")])
            seen[spec.uid] = path
            out.append(spec)
    return out


def _datasources_of(path: Path, environ: Mapping[str, str]) -> list[DatasourceSpec]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([(str(path), f"not a readable YAML file: {exc}")]) from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("datasources", []), list):
        raise ConfigError([(str(path), "expected Grafana's provisioning format: a mapping with a 'datasources' list")])
    out: list[DatasourceSpec] = []
    for index, raw in enumerate(doc.get("datasources") or []):
        where = f"{path}: datasources[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError([(where, "each datasource is a mapping")])
        missing: set[str] = set()
        entry = expand(raw, environ, missing, where)
        if missing:
            names = ", ".join(sorted(missing))
            raise ConfigError([(where, f"environment variable(s) not set: {names} (set them for the push too)")])
        out.append(_datasource_spec(path, where, entry))
    return out


def _datasource_spec(path: Path, where: str, entry: dict[str, Any]) -> DatasourceSpec:
    for key in ("name", "type", "uid"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError([(where, f"'{key}' is required (the push creates or updates datasources by uid)")])
    if not _UID.fullmatch(entry["uid"]):
        raise ConfigError([(where, f"uid {entry['uid']!r} is not 1-40 of A-Z a-z 0-9 _ -")])
    body: dict[str, Any] = {key: entry[key] for key in _DATASOURCE_FIELDS if key in entry}
    if "jsonData" in body and not isinstance(body["jsonData"], dict):
        raise ConfigError([(where, "'jsonData' is a mapping")])
    body.setdefault("access", "proxy")
    secure = entry.get("secureJsonData") or {}
    if not isinstance(secure, dict):
        raise ConfigError([(where, "'secureJsonData' is a mapping")])
    secure = dict(secure)
    for key in _LEGACY_SECRETS:
        if key in entry:
            secure.setdefault(key, entry[key])
    if secure:
        body["secureJsonData"] = {k: "" if v is None else str(v) for k, v in secure.items()}
    return DatasourceSpec(path=path, uid=entry["uid"], name=entry["name"], body=body)


def expand(value: Any, environ: Mapping[str, str], missing: set[str], where: str) -> Any:
    """``value`` with Grafana's provisioning variables expanded in every string; unset names go to ``missing``."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _replacement(m, environ, missing, where), value)
    if isinstance(value, dict):
        return {k: expand(v, environ, missing, where) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, environ, missing, where) for v in value]
    return value


def _replacement(match: re.Match[str], environ: Mapping[str, str], missing: set[str], where: str) -> str:
    if match.group(0) == "$$":
        return "$"
    macro = match.group("macro")
    if macro is not None and macro != "env":
        raise ConfigError([(where, f"${match.group(0)[1:]} reads from the Grafana server; push cannot expand it")])
    name = match.group("arg") if macro == "env" else (match.group("braced") or match.group("bare"))
    if name not in environ:
        missing.add(name)
        return ""
    return environ[name]


def datasource_unchanged(spec: DatasourceSpec, current: Mapping[str, Any]) -> bool:
    """True when Grafana's stored datasource equals the file's and no secret is to be (re)sent.

    Secrets cannot be compared (Grafana never returns them), so a datasource with
    ``secureJsonData`` is always updated.
    """
    if spec.has_secrets:
        return False
    for key, default in _DATASOURCE_FIELDS.items():
        want = spec.body.get(key, default)
        have = current.get(key, default)
        if (want or default) != (have or default):
            return False
    return True


def dashboard_unchanged(dashboard: DashboardFile, folder_uid: str, current: Mapping[str, Any]) -> bool:
    """True when ``current`` (``GET /api/dashboards/uid/...``) is this model in this folder."""
    stored = current.get("dashboard")
    meta = current.get("meta")
    if not isinstance(stored, dict) or not isinstance(meta, dict):
        return False
    if (meta.get("folderUid") or "") != folder_uid:
        return False
    return {k: v for k, v in stored.items() if k not in _DASHBOARD_INSTANCE_FIELDS} == dashboard.model


def dashboard_payload(dashboard: DashboardFile, folder_uid: str) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``: overwrite by uid, into the folder."""
    return {
        "dashboard": {**dashboard.model, "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": PUSH_MESSAGE,
    }


def backoff_delays(retries: int, base_secs: float, cap_secs: float = 8.0) -> list[float]:
    """Seconds to wait before each retry: ``base``, doubled each time, capped."""
    return [min(cap_secs, base_secs * 2**attempt) for attempt in range(max(0, retries))]
