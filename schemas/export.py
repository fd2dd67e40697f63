"""Export the envelope contract as JSON Schema files under ``schemas/json/``.

``callscope schemas export`` writes them; tests/test_schemas.py fails when the
committed files differ from what the models generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from schemas.envelope import ENVELOPE_ADAPTER, ENVELOPE_MODELS

JSON_DIR = Path(__file__).resolve().parent / "json"


def _dump(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def generate() -> dict[str, bytes]:
    """File name -> content of every schema file."""
    files: dict[str, bytes] = {}
    doc = ENVELOPE_ADAPTER.json_schema(mode="validation")
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "callscope envelope"
    files["envelope.schema.json"] = _dump(doc)
    for kind, model in ENVELOPE_MODELS.items():
        one = model.model_json_schema(mode="validation")
        one["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        files[f"envelope.{kind}.schema.json"] = _dump(one)
    return files


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in generate().items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    for stale in directory.glob("*.schema.json"):
        if stale.name not in generate():
            stale.unlink()
    return written


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Names of files that are missing, different or no longer generated."""
    expected = generate()
    problems = [
        name
        for name, content in expected.items()
        if not (directory / name).exists() or (directory / name).read_bytes() != content
    ]
    problems += [p.name for p in directory.glob("*.schema.json") if p.name not in expected]
    return sorted(problems)
