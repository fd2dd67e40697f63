"""Tests of the file collectors: the shared tailer, the CDR, CEL and queue_log parsers, collectors, replay.

The corpus is read in place from ``../shared/corpus`` beside the repository.
"""

from __future__ import annotations

from tests.corpus import corpus_file as corpus_file  # the files tests' import point

TESTSUITE = "asterisk-testsuite"
MASTER_CSV = f"{TESTSUITE}/lib/python/asterisk/self_test/Master.csv"
MASTER2_CSV = f"{TESTSUITE}/lib/python/asterisk/self_test/Master2.csv"
GOOD_CSV = f"{TESTSUITE}/asttest/self-tests/cdrlib/good.csv"
BUGGY_CSV = f"{TESTSUITE}/asttest/self-tests/cdrlib/buggy.csv"
CEL1_CSV = f"{TESTSUITE}/lib/python/asterisk/self_test/CELMaster1.csv"
CEL2_CSV = f"{TESTSUITE}/lib/python/asterisk/self_test/CELMaster2.csv"
CEL_CUSTOM_CONF = f"{TESTSUITE}/configs/cel_custom.conf"
WAZO_QUEUE_LOG = "wazo-doc/source/api_sdk/queue_log.rst"


def wazo_rows() -> list[str]:
    """The queue_log table rows printed in the Wazo page (DB layout), as they appear there."""
    text = corpus_file(WAZO_QUEUE_LOG).read_text()
    return [line for line in text.splitlines() if " | " in line and line.strip()[:2] == "20"]
