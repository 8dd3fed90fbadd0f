"""Text from outside made safe to show: the one function every terminal line and log line uses.

A server's refusal message or close reason, a symbol name read from a file or a path typed by
the user can hold control characters; printed raw, ESC starts CSI/OSC sequences that move the
cursor, retitle the window or write to the clipboard. :func:`printable` shows each such
character as an escape instead (``\\x1b``), so the text stays readable and inert.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides and
# isolates (text that reads differently from what it is).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: object, limit: int = 500) -> str:
    """``text`` as one inert line: control characters escaped, cut to ``limit`` characters.

    Args:
        text: anything; ``str()`` of it is taken.
        limit: most characters kept before escaping (an ellipsis marks a cut).
    """
    s = text if type(text) is str else str(text)
    if len(s) > limit:
        s = s[:limit] + "…"
    return _UNSAFE.sub(_escape, s)
