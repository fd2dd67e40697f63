"""Child process of test_unreadable: tails a file and reports, one JSON line per change on stdout.

    python -m tests.files.unreadable_child PATH CHECKPOINT EXPECTED_LINES

It runs as another user than the test (root reads any file, so the test drops to
``nobody`` when it runs as root). Exits 0 once EXPECTED_LINES lines were read, 1 after 60 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from tests.files.tailing import TailHarness


def main() -> int:
    path, checkpoint, expected = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    h = TailHarness(path, checkpoint, rotated_linger_secs=0.2).start()
    deadline = time.monotonic() + 60
    polls = 0
    last = b""
    while time.monotonic() < deadline:
        h.poll()
        polls += 1
        status = orjson.dumps({"lines": [x.decode() for x in h.lines], "events": h.events, "polls": polls})
        if status != last or polls % 10 == 0:
            sys.stdout.buffer.write(status + b"\n")
            sys.stdout.flush()
            last = status
        if len(h.lines) >= expected and not h.tailer.rotated:
            h.stop()
            return 0
        time.sleep(0.01)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
