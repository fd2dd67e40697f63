"""Build hook: compiles the HEP collector's C accelerator (collectors/hep/_speedups.c).

hatchling runs :class:`SpeedupsBuildHook` for every wheel, editable ones included
(``pip install .`` and ``pip install -e .``): the shared object is compiled with the system C
compiler (``CC``, else the compiler Python was built with) into the source tree next to
its module, and shipped in the wheel, which is then tagged for this interpreter and
platform. Without a working compiler the build goes on without it and the collector runs
the pure-Python reference path (it says which in its start-up log; the tests fail under
``CI=true`` when the extension is missing).

For development, ``python hatch_build.py`` builds it in place (``--sanitize`` adds
AddressSanitizer and UBSan, see docs/hep.md).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "collectors" / "hep" / "_speedups.c"
MODULE = "collectors/hep/_speedups"


def target() -> Path:
    """Where the shared object goes: beside the source, named for this interpreter."""
    return ROOT / (MODULE + str(sysconfig.get_config_var("EXT_SUFFIX")))


def compile_speedups(*, sanitize: bool = False, out: Path | None = None) -> Path:
    """Compile the extension; raises :class:`subprocess.CalledProcessError` or OSError when it cannot."""
    out = out or target()
    cc = shlex.split(os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc"))
    include = sysconfig.get_paths()["include"]
    flags = ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
    if sanitize:
        flags = ["-O1", "-g", "-fPIC", "-shared", "-Wall", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    tmp = out.with_name(out.name + ".tmp")
    subprocess.run([*cc, *flags, f"-I{include}", str(SOURCE), "-o", str(tmp)], check=True)  # noqa: S603 - our compiler
    tmp.replace(out)  # never leave a half-written .so where the importer looks
    return out


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # running as a script in an environment without hatchling
    BuildHookInterface = object  # type: ignore[assignment,misc]


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """Compile collectors/hep/_speedups.c and ship the shared object in the wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        try:
            built = compile_speedups()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"callscope: C accelerator not built ({exc}); HEP runs pure Python", file=sys.stderr)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(built)] = str(built.relative_to(ROOT))


if __name__ == "__main__":
    print(compile_speedups(sanitize="--sanitize" in sys.argv[1:]))
