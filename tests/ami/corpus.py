"""The public AMI recordings in ../shared/corpus, read in place (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

from tests.corpus import CORPUS, require

PANORAMISK = "panoramisk/tests/fixtures"
CACOFONISK = "cacofonisk/tests/fixtures"


_require = require


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
