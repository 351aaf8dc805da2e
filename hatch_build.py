"""Builds the optional C core, ``otel_bridge/_speedups.c``, into the wheel (hatchling's custom
build hook), or in place: ``python hatch_build.py`` (what `make` runs when the source changed).

Without a working C compiler or Python's headers the wheel is pure Python and says why: the
package then runs its Python code, which does the same (``otel_bridge._compiled``). Set
``OTEL_BRIDGE_BUILD_C=false`` to build a pure wheel on purpose; PyPy and free-threaded CPython
get one too (the C code uses CPython's API, with the GIL).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent
SOURCE = "otel_bridge/_speedups.c"
MODULE = "otel_bridge._speedups"
SKIP = "OTEL_BRIDGE_BUILD_C"


def compile_speedups(build_dir: Path, *, inplace: bool = False) -> Path:
    """Compile the extension with setuptools' build_ext (the platform's compiler and flags);
    its path. Raises whatever the compiler's failure raises."""
    from setuptools import Distribution, Extension  # type: ignore[import-untyped]
    from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

    extension = Extension(MODULE, [SOURCE], extra_compile_args=_flags())
    dist = Distribution({"name": "otel-bridge", "ext_modules": [extension]})
    command = build_ext(dist)
    command.inplace = inplace
    command.build_lib = str(build_dir)
    command.build_temp = str(build_dir / "temp")
    command.ensure_finalized()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        command.run()
        return Path(command.get_ext_fullpath(MODULE)).resolve()
    finally:
        os.chdir(cwd)


def _flags() -> list[str]:
    if sysconfig.get_platform().startswith("win"):
        return []
    return ["-O2", "-Wall", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def unsupported() -> str | None:
    """Why this interpreter gets no C core: the code uses CPython's own API, with the GIL."""
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "a free-threaded CPython"
    if os.environ.get(SKIP, "").strip().lower() in ("0", "false", "no", "off"):
        return f"{SKIP} is false"
    return None


if TYPE_CHECKING:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface

    _Hook = BuildHookInterface[Any]
else:
    try:
        from hatchling.builders.hooks.plugin.interface import BuildHookInterface as _Hook
    except ImportError:  # run as a script, in a venv without hatchling
        _Hook = object


class SpeedupsHook(_Hook):
    """The wheel gets the compiled core and a platform tag, when it compiles."""

    PLUGIN_NAME = "custom"

    _scratch: Path | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        why = unsupported()
        if why is not None:
            print(
                f"otel-bridge: no C core ({why}); the package runs its Python code", file=sys.stderr
            )
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="otel-bridge-build-"))
        try:
            if version == "editable":
                # The package runs from the tree: the module goes next to its source.
                compile_speedups(self._scratch, inplace=True)
                return
            built = compile_speedups(self._scratch)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: a pure wheel
            print(
                f"otel-bridge: the C core was not built ({type(exc).__name__}: {exc}); "
                "the package runs its Python code instead",
                file=sys.stderr,
            )
            return
        build_data["force_include"][str(built)] = f"otel_bridge/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


if __name__ == "__main__":
    reason = unsupported()
    if reason is not None:
        sys.exit(f"otel-bridge: no C core ({reason})")
    with tempfile.TemporaryDirectory(prefix="otel-bridge-build-") as scratch:
        print(compile_speedups(Path(scratch), inplace=True))
