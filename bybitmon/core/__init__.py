"""The sans-I/O core: frames in, events and metrics out.

Nothing here imports asyncio, websockets, rich, typer or ``time``; every clock is an argument.

Two builds of the same source: the per-frame modules (``COMPILED_MODULES``) may be present
both as ``.py`` files and as extension modules that ``pip install .`` compiled from those very
files with Cython (see setup.py); the compiled ones also use ``_fast.pyx`` (``FAST_MODULES``), a
fast path for well-formed common frames that hands everything else to the ``.py`` code. Python would load the compiled ones; this package decides
first, at import, and loads the ``.py`` files instead when ``BYBITMON_PURE`` is set (to anything
but ``0``), when nothing was compiled, or when a ``.py`` changed after the build (a stale build
never runs). :func:`implementation` says which one runs.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

from ._digest import source_digest

__all__ = ["COMPILED_MODULES", "FAST_MODULES", "implementation", "implementation_note"]

#: The modules of the per-frame path that setup.py compiles from their ``.py`` files.
COMPILED_MODULES = ("protocol", "book", "activity", "densities", "snapshot", "monitor")
#: Compiled-only modules (``.pyx``): the fast path the compiled modules use; the ``.py`` core
#: is their reference and never imports them.
FAST_MODULES = ("_fast",)

_HERE = os.path.dirname(os.path.abspath(__file__))


def _choose() -> tuple[str, str]:
    """("compiled" | "pure", why)."""
    if os.environ.get("BYBITMON_PURE", "") not in ("", "0"):
        return "pure", "BYBITMON_PURE is set"
    try:
        from ._compiled_sources import SOURCES
    except ImportError:
        return "pure", "the compiled core is not built"
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    for name, digest in SOURCES.items():
        if not any(os.path.exists(os.path.join(_HERE, name + sfx)) for sfx in suffixes):
            return "pure", f"the compiled {name} is missing"
        source = name + (".pyx" if name in FAST_MODULES else ".py")
        try:
            current = source_digest(os.path.join(_HERE, source))
        except OSError:
            return "pure", f"{source} is missing"
        if current != digest:
            what = source if name in FAST_MODULES else f"{source} or {name}.pxd"
            return "pure", f"{what} changed after the compiled core was built (reinstall to rebuild)"
    if not all(m in SOURCES for m in FAST_MODULES):
        return "compiled", "Cython build of the core's own .py files (without the fast path)"
    return "compiled", "Cython build of the core's .py files, with the _fast.pyx fast path"


class _PureFinder:
    """Finds the ``.py`` file of a compiled module, ahead of the extension module beside it."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


_IMPL, _NOTE = _choose()
if _IMPL == "pure":
    _sources = {f"{__name__}.{m}": os.path.join(_HERE, m + ".py") for m in COMPILED_MODULES}
    sys.meta_path.insert(0, _PureFinder({k: v for k, v in _sources.items() if os.path.exists(v)}))


def _fast_path(module_file: str, name: str, reference):
    """``reference`` (a function of a core module) or, when that module runs compiled
    (``module_file`` is not its ``.py``), the ``_fast`` path ``name`` bound to it, which hands
    what it does not take to ``reference``. The ``.py`` core never runs a fast path."""
    if module_file.endswith(".py"):
        return reference
    try:
        from . import _fast
    except ImportError:
        return reference
    return _fast.bind(name, reference)


def implementation() -> str:
    """``"compiled"`` when the Cython-compiled core runs, ``"pure"`` for the pure-Python one."""
    return _IMPL


def implementation_note() -> str:
    """Why :func:`implementation` is what it is, in a few words (for ``bybitmon --version``)."""
    return _NOTE
