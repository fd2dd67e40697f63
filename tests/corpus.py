"""The public conformance corpus, read in place from ``../shared/corpus`` beside the repository.

Never copied into the repository (each file keeps its upstream licence there). A test that
needs a file asks :func:`corpus_file` / :func:`require`: outside CI an absent corpus skips the
test with the reason; under ``CI=true`` it fails, because CI always has the corpus.
"""

from __future__ import annotations

from pathlib import Path

from tests.ci import unavailable

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def require(path: Path) -> Path:
    """``path`` (a file or folder of the corpus); skip, or fail under CI=true, when it is absent."""
    if not path.exists():
        unavailable(f"the corpus is missing: {path} (../shared/corpus beside the repository)")
    return path


def corpus_file(relative: str) -> Path:
    """A corpus file by its path below the corpus folder (``sngrep/tests/aaa.pcap``)."""
    return require(CORPUS / relative)
