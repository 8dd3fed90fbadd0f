"""Raw terminal bytes to key names (bybitmon.ui.keys)."""

from __future__ import annotations

import pytest

from bybitmon.ui.keys import KeyDecoder, decode_keys

SEQUENCES = {
    b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[C": "right", b"\x1b[D": "left",
    b"\x1bOA": "up", b"\x1bOB": "down",
    b"\x1b[5~": "pgup", b"\x1b[6~": "pgdn",
    b"\x1b[H": "home", b"\x1b[F": "end", b"\x1bOH": "home", b"\x1bOF": "end",
    b"\x1b[1~": "home", b"\x1b[4~": "end", b"\x1b[7~": "home", b"\x1b[8~": "end",
    b"\x1b[3~": "delete", b"\r": "enter", b"\n": "enter", b"\x7f": "backspace", b"\x03": "ctrl-c",
}


@pytest.mark.parametrize("data,key", SEQUENCES.items())
def test_special_keys_are_named(data, key):
    assert decode_keys(data) == [key]


def test_letters_and_symbols_are_themselves():
    assert decode_keys(b"qsSjk/?pfd") == list("qsSjk/?pfd")


def test_utf8_split_across_reads_is_one_character():
    d = KeyDecoder()
    raw = "é".encode()
    assert d.feed(raw[:1]) == [] and d.feed(raw[1:]) == ["é"]


@pytest.mark.parametrize("data", [b"\x1b[5~", b"\x1b[A", b"\x1bOB", b"\x1b[1;5C"])
def test_a_sequence_split_at_every_byte_gives_one_key(data):
    d = KeyDecoder()
    keys = []
    for i in range(len(data)):
        keys += d.feed(data[i:i + 1])
        if i < len(data) - 1:
            assert d.pending
    assert keys == decode_keys(data) and len(keys) == 1 and not d.pending


def test_lone_escape_waits_for_flush():
    d = KeyDecoder()
    assert d.feed(b"\x1b") == [] and d.pending
    assert d.flush() == ["esc"] and not d.pending
    assert d.flush() == []


def test_escape_then_letter_is_esc_and_the_letter():
    assert decode_keys(b"\x1bq") == ["esc", "q"]
    assert decode_keys(b"\x1b\x1b[A") == ["esc", "up"]


def test_unknown_sequences_are_swallowed_whole():
    assert decode_keys(b"a\x1b[99zb\x1b[200~c") == ["a", "b", "c"]


def test_many_keys_in_one_read_keep_their_order():
    assert decode_keys(b"j\x1b[Bk\x1b[6~\rq") == ["j", "down", "k", "pgdn", "enter", "q"]


def test_keyboard_reads_a_terminal_and_calls_after_keys_once_per_read():
    """Keyboard on a pseudo-terminal: each key to on_key, after_keys once per read that gave
    keys (the screen redraws once for a burst), a lone Esc after the flush delay, and the
    terminal's settings restored by stop()."""
    import asyncio
    import os
    import pty
    import termios

    from bybitmon.app.keyboard import ESC_WAIT_S, Keyboard

    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r", closefd=False)
    before = termios.tcgetattr(slave)
    calls: list[str] = []

    async def go():
        kb = Keyboard(calls.append, stream, after_keys=lambda: calls.append("|"))
        assert kb.start()
        try:
            assert termios.tcgetattr(slave) != before  # cbreak mode
            os.write(master, b"jjk")
            for _ in range(200):
                await asyncio.sleep(0.005)
                if "|" in calls:
                    break
            os.write(master, b"\x1b")
            await asyncio.sleep(ESC_WAIT_S * 4)
        finally:
            kb.stop()

    try:
        asyncio.run(asyncio.wait_for(go(), 10))
        assert [c for c in calls if c != "|"] == ["j", "j", "k", "esc"]
        # One call per read: "jjk" written at once normally arrives in one read.
        burst = calls[:calls.index("esc")]
        assert burst[-1] == "|" and 1 <= burst.count("|") <= 3 and calls[-2:] == ["esc", "|"]
        assert termios.tcgetattr(slave) == before
    finally:
        stream.close()
        os.close(master)
        os.close(slave)


def _libuv_like_loop():
    """An asyncio loop whose add_reader makes the watched descriptor non-blocking, as
    uvloop's libuv does (uv_poll_init): what once made watch's stdout non-blocking."""
    import asyncio
    import os

    class Loop(asyncio.SelectorEventLoop):
        def add_reader(self, fd, callback, *args):
            os.set_blocking(fd, False)
            return super().add_reader(fd, callback, *args)

    return Loop()


def _loop_factories():
    out = [("libuv-like", _libuv_like_loop)]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        out.append(("uvloop", uvloop.new_event_loop))
    return out


_LOOPS = _loop_factories()


@pytest.mark.parametrize("reopen", [True, False], ids=["reopened", "no-ttyname"])
@pytest.mark.parametrize("name,new_loop", _LOOPS, ids=[n for n, _ in _LOOPS])
def test_reading_keys_leaves_the_screen_output_blocking(name, new_loop, reopen, monkeypatch):
    """stdin and stdout of a terminal share one open file description; the Keyboard reads
    keys from the terminal opened afresh, so a loop that makes what it watches non-blocking
    cannot make the screen's writes fail half-way (EAGAIN) on a slow terminal. Where the
    terminal cannot be opened again (no name for it), stdin's descriptor is read and put back
    to blocking after the loop took it."""
    import asyncio
    import os
    import pty

    from bybitmon.app import keyboard
    from bybitmon.app.keyboard import Keyboard

    if not reopen:
        def no_name(fd):
            raise OSError("no tty name")

        monkeypatch.setattr(keyboard.os, "ttyname", no_name)

    master, slave = pty.openpty()
    stdin = os.fdopen(slave, "r", closefd=False)
    stdout_fd = os.dup(slave)  # what a terminal program's stdout is: the same description
    keys: list[str] = []

    async def go():
        kb = Keyboard(keys.append, stdin)
        assert kb.start()
        try:
            assert os.get_blocking(stdout_fd)
            os.write(master, b"q")
            for _ in range(400):
                await asyncio.sleep(0.005)
                if keys:
                    break
        finally:
            kb.stop()

    loop = new_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(go(), 10))
        assert keys == ["q"]
        assert os.get_blocking(stdout_fd) and os.get_blocking(slave)
    finally:
        loop.close()
        stdin.close()
        os.close(stdout_fd)
        os.close(master)
        os.close(slave)
