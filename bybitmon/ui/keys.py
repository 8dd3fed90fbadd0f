"""Raw terminal bytes to key names. Sans-I/O: bytes in, keys out, no terminal access.

A terminal in cbreak mode sends a letter as itself and a special key as an escape sequence
(``ESC [ A`` for up, ``ESC [ 5 ~`` for PgUp, ...), and a read may end in the middle of one.
:class:`KeyDecoder` keeps the unfinished tail until the next read. A lone ``ESC`` cannot be told
from the start of a sequence until more bytes come or none do: the caller calls
:meth:`KeyDecoder.flush` after a short quiet time (the I/O layer uses 50 ms) to report it.

Key names: single characters as themselves (``"q"``, ``"/"``, ``"S"``), and ``up``, ``down``,
``left``, ``right``, ``pgup``, ``pgdn``, ``home``, ``end``, ``enter``, ``esc``, ``backspace``,
``tab``, ``delete``, ``insert``, ``ctrl-c``. Unknown sequences are swallowed whole.
"""

from __future__ import annotations

import codecs

__all__ = ["KeyDecoder", "decode_keys", "KEY_NAMES", "ESC"]

_ESC = "\x1b"

# CSI/SS3 final bytes without parameters: ESC [ X or ESC O X.
_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}
# ESC [ N ~ (vt220 / xterm) and rxvt's variants.
_TILDE = {"1": "home", "2": "insert", "3": "delete", "4": "end", "5": "pgup", "6": "pgdn",
          "7": "home", "8": "end"}
_CONTROL = {"\r": "enter", "\n": "enter", "\t": "tab", "\x7f": "backspace", "\x08": "backspace",
            "\x03": "ctrl-c"}

KEY_NAMES = frozenset(set(_FINAL.values()) | set(_TILDE.values()) | set(_CONTROL.values()) | {"esc"})


class KeyDecoder:
    """Incremental decoder: :meth:`feed` bytes as they are read, get the keys completed so far."""

    __slots__ = ("_utf8", "_pending")

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # an unfinished escape sequence

    @property
    def pending(self) -> bool:
        """Whether an escape sequence is still unfinished (call :meth:`flush` if no byte follows)."""
        return bool(self._pending)

    def feed(self, data: bytes) -> list[str]:
        """The keys completed by ``data`` (and whatever was pending before it)."""
        text = self._pending + self._utf8.decode(data)
        self._pending = ""
        keys: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c != _ESC:
                keys.append(_CONTROL.get(c, c))
                i += 1
                continue
            end, key = _sequence(text, i)
            if end is None:  # unfinished: keep it for the next read
                self._pending = text[i:]
                break
            if key is not None:
                keys.append(key)
            i = end
        return keys

    def flush(self) -> list[str]:
        """Report an unfinished sequence as typed: a lone ``ESC`` is the Esc key; ``ESC x``
        is Esc then ``x`` (Alt-x)."""
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        rest = pending[1:]
        if rest in ("[", "O"):
            return ["esc", rest]
        return ["esc"] + [_CONTROL.get(c, c) for c in rest if c != _ESC]


def _sequence(text: str, i: int) -> tuple[int | None, str | None]:
    """Parse the escape sequence at ``text[i]`` (an ESC): ``(end, key)``; ``end`` None when
    it is unfinished, ``key`` None for a complete but unknown sequence."""
    n = len(text)
    if i + 1 >= n:
        return None, None
    c = text[i + 1]
    if c == _ESC:  # ESC ESC: the first one was the Esc key
        return i + 1, "esc"
    if c == "O":  # SS3: ESC O A (application cursor keys), ESC O H / F
        if i + 2 >= n:
            return None, None
        return i + 3, _FINAL.get(text[i + 2])
    if c != "[":  # Alt+key arrives as ESC key: report the Esc, keep the key
        return i + 1, "esc"
    # CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e.
    j = i + 2
    while j < n and "\x20" <= text[j] <= "\x3f":
        j += 1
    if j >= n:
        return None, None
    final = text[j]
    if not "\x40" <= final <= "\x7e":  # not a CSI after all: drop ESC [ and go on
        return j, None
    params = text[i + 2:j]
    if final == "~":
        return j + 1, _TILDE.get(params.split(";", 1)[0])
    if final in _FINAL and (not params or params.startswith("1")):  # ESC [ 1 ; 5 A (Ctrl-Up) too
        return j + 1, _FINAL[final]
    return j + 1, None


def decode_keys(data: bytes) -> list[str]:
    """Every key in ``data`` read at once (an unfinished sequence at the end counts as typed)."""
    d = KeyDecoder()
    return d.feed(data) + d.flush()
