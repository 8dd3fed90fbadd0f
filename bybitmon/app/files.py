"""Output files: checked before anything is read or connected, never overwritten without force."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, Iterable

from ..errors import printable
from ..errors import RecordingError, UsageError

__all__ = ["check_input", "check_outputs", "open_append", "same_file"]


def check_input(path: str, hint: str) -> None:
    """Refuse an input that is not a regular file (a FIFO or a device may never end), with a
    ``hint`` that fits the command (only ``replay`` has ``--follow``). A missing file or a
    directory is left to the reader, which names them.

    Raises:
        RecordingError: ``path`` is a FIFO, a device or a socket.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    raise RecordingError(f"{printable(path)}: is {kind}, not a regular file, and may never end ({hint})")


def same_file(a: str, b: str) -> bool:
    """True when paths ``a`` and ``b`` name the same file (links followed; a missing file
    compares by its absolute path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _check_one(path: str, option: str, *, force: bool, append: bool, replace: bool, inputs: Iterable[str]) -> None:
    shown = printable(path)
    if not path:
        raise UsageError(f"{option}: empty path")
    for src in inputs:
        if src and same_file(path, src):
            raise UsageError(f"{option} {shown} is the input file; write somewhere else")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"{option} {shown}: cannot use ({exc.strerror})") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{option} {shown} is a directory; give a file name")
        if replace and not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{option} {shown} is not a regular file; give a file name")
        if stat.S_ISREG(st.st_mode) and not append and not force:
            raise UsageError(f"{option} {shown} already exists; use --force to overwrite it")
        # Devices and pipes (/dev/null, a FIFO) are written as they are: nothing to destroy.
        if not os.access(path, os.W_OK):
            raise UsageError(f"{option} {shown}: not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {shown}: directory {printable(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {shown}: directory {printable(parent)} is not writable")


def check_outputs(outputs: Iterable[tuple[str, str | None]], *, inputs: Iterable[str] = (), force: bool = False,
                  append: Iterable[str] = (), replace: bool = False) -> None:
    """Refuse, before any input is read, an output that cannot or must not be written.

    Args:
        outputs: ``(option, path)`` pairs; ``None`` paths are skipped.
        inputs: files the command reads: an output naming one of them is refused.
        force: overwrite existing regular files.
        append: options whose file is appended to (an existing file is fine).
        replace: outputs are written aside and renamed over the path, so an existing one must
            be a regular file (never a device or a pipe).

    Raises:
        UsageError: a directory, a missing or unwritable directory, the input itself, two
            outputs naming one file, or an existing file without ``force``.
    """
    given = [(opt, p) for opt, p in outputs if p is not None]
    inputs = [p for p in inputs if p]
    appended = set(append)
    for i, (opt, p) in enumerate(given):
        _check_one(p, opt, force=force, append=opt in appended, replace=replace, inputs=inputs)
        for opt2, p2 in given[:i]:
            if same_file(p, p2):
                raise UsageError(f"outputs must be different files: {opt2} and {opt} both name {printable(p)}")


def open_append(path: str) -> BinaryIO:
    """Open ``path`` for appending (an alerts log); a failure is a one-line :class:`UsageError`."""
    try:
        return open(path, "ab")
    except OSError as exc:
        raise UsageError(f"{printable(path)}: cannot write ({exc.strerror})") from None
