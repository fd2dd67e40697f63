"""Which implementation of the HEP hot path runs: the C accelerator or the pure-Python reference.

``collectors/hep/_speedups.c`` (built by ``pip install``, see ``hatch_build.py``) provides
``decode`` and ``parse_fields`` with the signatures and the results of
:func:`collectors.hep.decode.decode_pure` and :func:`collectors.hep.sip.parse_fields_pure`:
it decodes the common packets itself and hands every other input to those functions, so
errors and unusual inputs are always read by the reference code. ``decode`` and
``parse_fields`` in those modules are the C functions when the extension imports, the pure
ones otherwise.

``CALLSCOPE_HEP_PURE=1`` (any value but empty or ``0``) forces the pure path. :data:`PATH`
says which one runs (``"c"`` or ``"python"``); the HEP collector logs it at start and the
benchmark prints it.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["PATH", "PURE_ENV", "native"]

#: The environment variable that forces the pure-Python path.
PURE_ENV = "CALLSCOPE_HEP_PURE"


def _load() -> ModuleType | None:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    try:
        from collectors.hep import _speedups
    except ImportError:
        return None
    return _speedups


#: The extension module, or ``None`` when the pure path runs.
native: ModuleType | None = _load()
#: ``"c"`` or ``"python"``: the path that ``decode.decode``, ``sip.parse_fields`` and ``events.envelope_from_hep`` take.
PATH = "c" if native is not None else "python"
