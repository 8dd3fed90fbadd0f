"""The layout is the architecture: the sans-I/O core imports nothing of the I/O world, and every
public module says what it exports (httpx's ``test_exported_members`` pattern)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bybitmon

PACKAGE = Path(bybitmon.__file__).resolve().parent
SANS_IO = ("core", "sim")
# What the sans-I/O packages may never import: the I/O libraries, the clock, sockets, and the
# packages of bybitmon that do I/O (the import graph points one way).
FORBIDDEN = {"asyncio", "websockets", "rich", "typer", "time", "socket", "selectors", "ssl", "uvloop",
             "threading", "subprocess"}
FORBIDDEN_BYBITMON = {"transport", "testserver", "app", "ui", "compat", "cli"}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in ``path`` (a file under ``root``)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(root).with_suffix("").parts  # ("bybitmon", "core", "monitor")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[: len(rel) - node.level])
                name = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from .. import x: each x may be a module
                    out += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
                    continue
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


@pytest.mark.parametrize("folder", SANS_IO)
def test_sans_io_packages_import_no_io_and_no_clock(folder):
    """No module of core/ or sim/ imports asyncio, websockets, rich, typer, time or sockets,
    nor bybitmon's own I/O packages; checked on the source, so a lazy import counts too."""
    bad = []
    for path in _modules(folder):
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] in FORBIDDEN or (parts[0] == "bybitmon" and len(parts) > 1 and parts[1] in FORBIDDEN_BYBITMON):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_import_check_sees_relative_and_lazy_imports(tmp_path):
    """The checker itself: a relative import of an I/O package and a lazy ``import time`` are found."""
    fake = tmp_path / "bybitmon" / "core" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    import time\n    from ..transport import client\n    from .. import ui\n")
    names = {n for n, _ in _imports(fake, tmp_path)}
    assert {"time", "bybitmon.transport", "bybitmon.ui"} <= names


_BLOCKED_RUN = textwrap.dedent("""
    import sys

    BLOCKED = ("asyncio", "websockets", "rich", "typer", "uvloop")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]

    import pkgutil, importlib
    import bybitmon.core, bybitmon.sim
    for pkg in (bybitmon.core, bybitmon.sim):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)

    from bybitmon.core.monitor import Monitor
    from bybitmon.core.alerts import AlertEngine
    from bybitmon.sim import MarketSimulator

    m = Monitor("linear")
    engine = AlertEngine(["tps>0"])
    fired = 0
    for ts, raw in MarketSimulator(["BTCUSDT"], seed=2).frames(5_000):
        m.feed(ts * 1_000_000, raw)
    m.advance()
    snap = m.snapshot("BTCUSDT")
    fired = len(engine.evaluate(snap))
    assert snap.book.ready and snap.trades.count > 0 and fired == 1, snap
    assert not any(n.split(".")[0] in BLOCKED for n in sys.modules), sorted(sys.modules)
    print("ok", snap.trades.count)
""")


def test_core_and_sim_import_and_run_without_the_io_libraries():
    """With asyncio, websockets, rich, typer and uvloop made unimportable, bybitmon.core and
    bybitmon.sim import and run a simulated pipeline end to end."""
    p = subprocess.run([sys.executable, "-c", _BLOCKED_RUN], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok ")


def _public_modules() -> list[str]:
    names = ["bybitmon"]
    for info in pkgutil.walk_packages(bybitmon.__path__, "bybitmon."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def _defined_public_names(module) -> set[str]:
    """Public classes, functions and UPPER_CASE constants defined in the module itself."""
    # The source file, also when the module runs compiled (its __file__ is then the extension).
    path = Path(bybitmon.__file__).parent.joinpath(*module.__name__.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "TypeVar":
                continue  # a type variable is not part of the API
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper():
                    names.add(t.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", _public_modules())
def test_public_module_all_is_honest(name):
    """Every public module has ``__all__``; every name in it exists; every public class,
    function and constant the module defines is in it."""
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    if name == "bybitmon" or Path(module.__file__).name == "__init__.py":
        return  # packages re-export; what they define themselves is checked above
    unlisted = sorted(_defined_public_names(module) - set(module.__all__))
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"
