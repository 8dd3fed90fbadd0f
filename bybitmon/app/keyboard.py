"""Keys from the terminal without blocking the event loop.

:class:`Keyboard` puts the terminal in cbreak mode (keys arrive one by one, not echoed; Ctrl-C
still raises SIGINT), reads stdin from the asyncio loop with ``loop.add_reader`` and hands each
decoded key to a callback. The terminal's settings are restored by :meth:`Keyboard.stop`, which
``run_watch`` calls in a ``finally`` (Ctrl-C, SIGTERM, errors), and once more at interpreter
exit as a last resort. When stdin is not a terminal it does nothing, and watch behaves as
it always did.

Keys are read from the terminal opened a second time (its own open file description), not from
stdin's descriptor: stdin and stdout of a terminal program share one description, and an event
loop may make the descriptor it watches non-blocking (uvloop's libuv does), which would make
stdout non-blocking too: a terminal that reads the screen slowly (ssh, a busy tmux) then gets a
screen cut short (EAGAIN), the footer missing for seconds (seen in bench/scale.py --watch-all).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
from typing import Callable, TextIO

from ..ui.keys import KeyDecoder

__all__ = ["Keyboard", "ESC_WAIT_S"]

ESC_WAIT_S = 0.05  # a lone ESC is the Esc key when no byte follows within this time


class Keyboard:
    """Reads keys from ``stream`` (default stdin) into ``on_key`` while started; ``after_keys``
    (if given) is called once after each read that delivered keys, e.g. to redraw once for a
    burst of keys rather than once per key."""

    def __init__(self, on_key: Callable[[str], None], stream: TextIO | None = None,
                 after_keys: Callable[[], None] | None = None) -> None:
        self.on_key = on_key
        self.after_keys = after_keys
        self.stream = stream if stream is not None else sys.stdin
        self.decoder = KeyDecoder()
        self.active = False
        self._fd: int | None = None       # the terminal's settings are read and restored here
        self._read_fd: int | None = None  # keys are read here (opened by start() unless it is _fd)
        self._saved: list | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_handle: asyncio.TimerHandle | None = None

    def is_terminal(self) -> bool:
        """Whether the stream is a terminal (keys can be read from it)."""
        try:
            return os.isatty(self.stream.fileno())
        except (AttributeError, ValueError, OSError):
            return False

    def start(self) -> bool:
        """Enter cbreak mode and start reading; False (and nothing done) without a terminal."""
        try:
            import termios
            import tty
        except ImportError:  # pragma: no cover - not on POSIX
            return False
        try:
            fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            return False
        if not os.isatty(fd):
            return False
        try:
            self._saved = termios.tcgetattr(fd)
        except termios.error:
            return False
        self._fd = fd
        self._read_fd = _reading_fd(fd)
        atexit.register(self.stop)
        tty.setcbreak(fd, termios.TCSANOW)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self._readable)
        if self._read_fd == fd:
            # Only stdin's own descriptor could be had: keep it (and so stdout) blocking,
            # whatever the loop did; a read happens only when the loop says a key is there.
            os.set_blocking(fd, True)
        self.active = True
        return True

    def stop(self) -> None:
        """Stop reading and restore the terminal's settings (safe to call twice)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        read_fd, self._read_fd = self._read_fd, None
        self.active = False
        if self._loop is not None and not self._loop.is_closed() and read_fd is not None:
            try:
                self._loop.remove_reader(read_fd)
            except (ValueError, OSError, RuntimeError):  # pragma: no cover - loop already gone
                pass
        if read_fd is not None and read_fd != fd:
            try:
                os.close(read_fd)
            except OSError:  # pragma: no cover
                pass
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
            except termios.error:  # pragma: no cover - terminal gone (hang-up)
                pass
        atexit.unregister(self.stop)

    def __enter__(self) -> Keyboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _readable(self) -> None:
        try:
            data = os.read(self._read_fd, 1024)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # end of input (the terminal went away): stop reading, keep going
            if self._loop is not None and self._read_fd is not None:
                self._loop.remove_reader(self._read_fd)
            return
        keys = self.decoder.feed(data)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.decoder.pending and self._loop is not None:
            self._flush_handle = self._loop.call_later(ESC_WAIT_S, self._flush)
        self._deliver(keys)

    def _flush(self) -> None:
        self._flush_handle = None
        self._deliver(self.decoder.flush())

    def _deliver(self, keys: list[str]) -> None:
        for k in keys:
            self.on_key(k)
        if keys and self.after_keys is not None:
            self.after_keys()


def _reading_fd(fd: int) -> int:
    """A descriptor to read the terminal ``fd`` from without sharing ``fd``'s file status flags:
    the terminal opened afresh (the caller closes it), else ``fd`` itself."""
    try:
        return os.open(os.ttyname(fd), os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return fd
