"""The exception tree: documented in one docstring, and every class in it is raised somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import bybitmon
from bybitmon import errors

PACKAGE = Path(bybitmon.__file__).parent


def test_every_error_class_is_created_somewhere_in_the_package():
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "errors.py")
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is errors.BybitmonError or not isinstance(cls, type):
            continue
        assert re.search(rf"\b{name}(\.refused)?\(", sources), f"{name} is never raised: delete it"


def test_the_docstring_documents_every_class_and_every_class_derives_from_the_base():
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue  # printable(): the one sanitiser of outside text, documented in the docstring
        assert issubclass(cls, errors.BybitmonError)
        assert f"+-- {name} " in errors.__doc__ or name == "BybitmonError", name
