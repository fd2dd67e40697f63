"""The public AMI recordings in ../shared/corpus, read in place (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
PANORAMISK = "panoramisk/tests/fixtures"
CACOFONISK = "cacofonisk/tests/fixtures"


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing in CI: {path}")
        pytest.skip(f"corpus not present at {CORPUS} (../shared/corpus beside the repository)")
    return path


def corpus_file(relative: str) -> Path:
    """A corpus file; skip (or fail under CI=true) when the corpus is absent."""
    return _require(CORPUS / relative)


def transcripts() -> list[Path]:
    """panoramisk's raw AMI wire transcripts (``*.yaml``, plain text)."""
    return sorted(_require(CORPUS / PANORAMISK).glob("*.yaml"))


def recordings() -> list[Path]:
    """cacofonisk's AMI JSON recordings, one per call scenario."""
    return sorted(_require(CORPUS / CACOFONISK).glob("*/*.json"))


def transcript_names() -> list[str]:
    """Names for parametrising (empty when the corpus is absent; the tests then skip by themselves)."""
    folder = CORPUS / PANORAMISK
    return sorted(p.name for p in folder.glob("*.yaml")) if folder.is_dir() else ["<no corpus>"]


def recording_names() -> list[str]:
    folder = CORPUS / CACOFONISK
    return sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("*/*.json")) if folder.is_dir() else ["<no corpus>"]
