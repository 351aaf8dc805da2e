"""Builds the optional C core, ``otel_bridge/_speedups.c``, into the wheel (hatchling's custom
build hook), or in place: ``python hatch_build.py`` (what `make` runs when the source changed).

Without a working C compiler or Python's headers the wheel is pure Python and says why: the
package then runs its Python code, which does the same (``otel_bridge._compiled``). Set
``OTEL_BRIDGE_BUILD_C=false`` to build a pure wheel on purpose.
"""

from __future__ import annotations

import os
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
    finally:
        os.chdir(cwd)
    built = ROOT / command.get_ext_fullpath(MODULE) if inplace else None
    return built if built is not None else Path(command.get_ext_fullpath(MODULE))


def _flags() -> list[str]:
    if sysconfig.get_platform().startswith("win"):
        return []
    return ["-O2", "-Wall", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def _wanted() -> bool:
    return os.environ.get(SKIP, "").strip().lower() not in ("0", "false", "no", "off")


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

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or not _wanted():
            return
        try:
            if version == "editable":
                # The package runs from the tree: the module goes next to its source.
                compile_speedups(Path(tempfile.mkdtemp(prefix="otel-bridge-build-")), inplace=True)
                return
            built = compile_speedups(Path(tempfile.mkdtemp(prefix="otel-bridge-build-")))
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


if __name__ == "__main__":
    print(compile_speedups(Path(tempfile.mkdtemp(prefix="otel-bridge-build-")), inplace=True))
