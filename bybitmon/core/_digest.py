"""The digest that ties the compiled core to its sources, one definition for the build
(setup.py loads this file by its path, before the package is installed) and for the import-time
check in ``bybitmon/core/__init__.py``. Standard library only."""

from __future__ import annotations

import hashlib
import os


def source_digest(path: str) -> str:
    """sha256 of a module's source (``.py`` or ``.pyx``), and of its ``.pxd`` (the C declarations
    Cython compiles it with) when it has one. Raises OSError when the source cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    pxd = os.path.splitext(path)[0] + ".pxd"
    if os.path.exists(pxd):
        with open(pxd, "rb") as f:
            h.update(f.read())
    return h.hexdigest()
