"""Build hook: compiles the C accelerators (collectors/hep/_speedups.c, callscope/store/_arrow.c).

hatchling runs :class:`SpeedupsBuildHook` for every wheel, editable ones included
(``pip install .`` and ``pip install -e .``): each shared object is compiled with the system C
compiler (``CC``, else the compiler Python was built with) into the source tree next to
its module, and shipped in the wheel, which is then tagged for this interpreter and
platform. Without a working compiler the build goes on without them and the Python paths
run: the HEP collector's pure-Python reference (it says which in its start-up log) and
pyarrow's own conversion of the rows the store inserts. The tests fail under ``CI=true``
when an extension is missing.

For development, ``python hatch_build.py`` builds them in place (``--sanitize`` adds
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
#: The extensions: module path (without the suffix) -> its C source.
MODULES = {
    "collectors/hep/_speedups": ROOT / "collectors" / "hep" / "_speedups.c",
    "callscope/store/_arrow": ROOT / "callscope" / "store" / "_arrow.c",
}


def target(module: str) -> Path:
    """Where a shared object goes: beside its source, named for this interpreter."""
    return ROOT / (module + str(sysconfig.get_config_var("EXT_SUFFIX")))


def compile_speedups(*, sanitize: bool = False) -> list[Path]:
    """Compile every extension; raises :class:`subprocess.CalledProcessError` or OSError when one cannot be."""
    return [compile_one(module, sanitize=sanitize) for module in MODULES]


def compile_one(module: str, *, sanitize: bool = False, out: Path | None = None) -> Path:
    """Compile one extension of :data:`MODULES`."""
    out = out or target(module)
    cc = shlex.split(os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc"))
    include = sysconfig.get_paths()["include"]
    flags = ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
    if sanitize:
        flags = ["-O1", "-g", "-fPIC", "-shared", "-Wall", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    tmp = out.with_name(out.name + ".tmp")
    subprocess.run([*cc, *flags, f"-I{include}", str(MODULES[module]), "-o", str(tmp)], check=True)  # noqa: S603 - our compiler
    tmp.replace(out)  # never leave a half-written .so where the importer looks
    return out


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # running as a script in an environment without hatchling
    BuildHookInterface = object  # type: ignore[assignment,misc]


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """Compile the C accelerators and ship their shared objects in the wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        built: list[Path] = []
        for module in MODULES:
            try:
                built.append(compile_one(module))
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"callscope: C accelerator {module} not built ({exc}); its Python path runs", file=sys.stderr)
        if not built:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports them from the source tree
            for path in built:
                build_data["force_include"][str(path)] = str(path.relative_to(ROOT))


if __name__ == "__main__":
    for path in compile_speedups(sanitize="--sanitize" in sys.argv[1:]):
        print(path)
