"""The real CLI against hostile servers (tests/hostile.py), closed pipes and full devices.

Each test runs ``python -m bybitmon`` as a user would and checks what a user would see: the exit
status, stdout, and stderr (one line for an error, no traceback, no raw control characters).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import hostile
from paths import TIMEOUT_FACTOR, fixture_lines, fixture_path

BM = [sys.executable, "-m", "bybitmon"]
REAL = "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"  # optional: BYBITMON_REAL_CAPTURES
SIM = "sim_linear_BTCUSDT_ETHUSDT.ndjson"  # `serve --simulate` capture in tests/data
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Bytes a terminal would obey: ESC, BEL, and the C1 CSI in its UTF-8 form.
RAW_CONTROLS = re.compile(rb"[\x07\x1b]|\xc2[\x80-\x9f]")


def bm(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*BM, *args], capture_output=True, timeout=timeout * TIMEOUT_FACTOR, **kw)


def serve(*args: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([*BM, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())  # type: ignore[union-attr]
    assert m, "serve printed no URL"
    return p, m.group(1)


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait(10)


@pytest.fixture(scope="module")
def sim_url():
    p, url = serve("--simulate", "--symbols", "BTCUSDT,ETHUSDT", "--speed", "3")
    yield url
    stop(p)


@pytest.fixture
def hostile_server(request):
    p, url = hostile.start(request.param)
    yield url
    hostile.stop(p)


def one_error_line(stderr: bytes) -> str:
    """The last stderr line, checked to be bybitmon's one-line error without a traceback."""
    text = stderr.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: "), text
    return last


# -- item 6: output errors end the command -------------------------------------------------

@pytest.mark.parametrize("cmd", ["watch", "replay"])
def test_json_into_a_closed_pipe_exits_quietly(cmd, sim_url):
    """`bybitmon watch|replay ... --json | head -1`: exits 0 at once, nothing on stderr."""
    if cmd == "watch":
        args = ["watch", "BTCUSDT", "--json", "--interval", "200ms", "--url", sim_url]
    else:
        args = ["replay", "--simulate", "--duration", "30m", "--speed", "max", "--json"]
    p = subprocess.Popen([*BM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()  # type: ignore[union-attr]
        assert orjson.loads(first)["type"] == "snapshot"
        p.stdout.close()  # type: ignore[union-attr]
        status = p.wait(20 * TIMEOUT_FACTOR)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()  # type: ignore[union-attr]
    assert status == 0, err
    assert err == b"", err


def test_alerts_to_a_full_device_end_watch_with_one_error(sim_url):
    """`--alerts-out /dev/full`: one error line and a non-zero exit, long before --duration."""
    t0 = time.monotonic()
    p = bm("watch", "BTCUSDT", "--json", "--url", sim_url, "--alert", "tpm>0", "--alerts-out", "/dev/full",
           "--duration", "40s")
    assert time.monotonic() - t0 < 30 * TIMEOUT_FACTOR
    assert p.returncode == 2
    assert one_error_line(p.stderr) == "error: /dev/full: write failed (No space left on device)"
    assert b"reconnect" not in p.stderr.lower()


@pytest.mark.parametrize("name", [REAL, SIM])
def test_alerts_to_a_full_device_end_replay_with_one_error(name):
    p = bm("replay", str(fixture_path(name)), "--alert", "tpm>0", "--alerts-out", "/dev/full")
    assert p.returncode == 2
    assert one_error_line(p.stderr) == "error: /dev/full: write failed (No space left on device)"


@pytest.mark.parametrize("name", [REAL, SIM])
def test_stdout_on_a_full_device_ends_replay_with_one_error(name):
    with open("/dev/full", "wb") as full:
        p = subprocess.run([*BM, "replay", str(fixture_path(name)), "--json"], stdout=full,
                           stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 2
    assert one_error_line(p.stderr) == "error: stdout: write failed (No space left on device)"


# -- item 9: refusals are visible ------------------------------------------------------------

def test_watch_of_a_refused_symbol_says_so_in_json_and_exits_nonzero(sim_url):
    t0 = time.monotonic()
    p = bm("watch", "FOOBAR", "--json", "--duration", "60s", "--url", sim_url)
    elapsed = time.monotonic() - t0
    assert p.returncode == 2
    status = [orjson.loads(line) for line in p.stdout.splitlines()]
    assert {(s["type"], s["symbol"], s["topic"], s["state"]) for s in status} == {
        ("status", "FOOBAR", "orderbook.50.FOOBAR", "refused"), ("status", "FOOBAR", "publicTrade.FOOBAR", "refused")}
    assert all("handler not found" in s["error"] for s in status)
    assert one_error_line(p.stderr).startswith("error: every subscription was refused by the server")
    assert elapsed < 30 * TIMEOUT_FACTOR  # ends at once, not at --duration: nothing asked for can come


def test_watch_table_shows_a_refused_symbol_and_exits_nonzero(sim_url):
    p = bm("watch", "BTCUSDT", "FOOBAR", "--duration", "3s", "--url", sim_url, env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 2
    row = next(line for line in p.stdout.decode().splitlines() if "FOOBAR" in line and "│" in line)
    assert "error: refused" in row
    assert one_error_line(p.stderr).startswith("error: 2 of 4 subscriptions refused by the server")


def test_record_with_a_refused_depth_exits_nonzero_and_keeps_the_trades(tmp_path):
    # `serve --simulate` serves every depth, as Bybit does; a server replaying a depth-50 capture
    # serves depth 50 only and refuses orderbook.200 with Bybit's failure ack.
    srv, url = serve("--from", str(fixture_path(SIM)))
    try:
        out = tmp_path / "r.ndjson"
        p = bm("record", "BTCUSDT", "--depth", "200", "-o", str(out), "--url", url, "--duration", "3s")
    finally:
        stop(srv)
    assert p.returncode == 2
    assert "orderbook.200.BTCUSDT" in one_error_line(p.stderr)
    assert b'"topic":"publicTrade.BTCUSDT"' in out.read_bytes()


# -- item 8: nothing from outside reaches the terminal raw -------------------------------------

@pytest.mark.parametrize("hostile_server", ["refuse"], indirect=True)
@pytest.mark.parametrize("json_", [True, False])
def test_refusal_messages_are_escaped(hostile_server, json_):
    p = bm("watch", "FOOBAR", *(["--json"] if json_ else []), "--duration", "3s", "--url", hostile_server,
           env={**os.environ, "COLUMNS": "250"})
    assert p.returncode == 2
    assert RAW_CONTROLS.search(p.stdout) is None and RAW_CONTROLS.search(p.stderr) is None
    assert b"\\x1b]0;pwned\\x07" in p.stderr  # shown, as escapes


@pytest.mark.parametrize("hostile_server", ["close"], indirect=True)
def test_close_reasons_are_escaped(hostile_server):
    p = bm("watch", "BTCUSDT", "--json", "--duration", "3s", "--url", hostile_server)
    assert b"ConnectionClosed" in p.stderr and b"\\x1b]0;pwned" in p.stderr
    assert RAW_CONTROLS.search(p.stderr) is None


def test_symbol_names_and_paths_from_outside_are_escaped(tmp_path):
    """A symbol with escapes in a file never reaches the table (the parser counts it as a bad
    frame); a path with escapes is shown escaped in the error line."""
    evil_sym = "EVIL\x1b]0;pwned\x07USDT"
    src = tmp_path / "evil.ndjson"
    src.write_bytes(hostile.trade_frame(evil_sym, 1_700_000_000_000, 1) + b"\n"
                    + hostile.trade_frame(evil_sym, 1_700_000_001_000, 2) + b"\n"
                    + hostile.trade_frame("GOODUSDT", 1_700_000_002_000, 3) + b"\n")
    table = bm("replay", str(src), env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    # The parser refuses such a symbol outright (letters, digits, '_' and '-' only): the frames
    # are counted as bad, and nothing of the name reaches the terminal.
    assert b"2 bad frames skipped" in table.stderr and b"bad symbol" in table.stderr
    assert b"EVIL" not in table.stdout
    assert b"GOODUSDT" in table.stdout
    assert RAW_CONTROLS.search(table.stdout) is None and RAW_CONTROLS.search(table.stderr) is None
    missing = bm("replay", str(tmp_path / "no\x1b[2Jsuch.ndjson"))
    assert missing.returncode == 2
    assert "no\\x1b[2Jsuch.ndjson" in one_error_line(missing.stderr)
    assert RAW_CONTROLS.search(missing.stderr) is None


# -- item 12: option errors, Ctrl-C, uvloop, a silent feed, the production example ----------

@pytest.mark.parametrize("args,option", [
    (["watch", "BTCUSDT", "--density-x", "-1"], "--density-x"),
    (["watch", "BTCUSDT", "--min-notional", "-5"], "--min-notional"),
    (["replay", "--simulate", "--min-notional", "-5"], "--min-notional"),
    (["replay", "--simulate", "--density-x", "-2"], "--density-x"),
    (["watch", "BTCUSDT", "--duration", "0s"], "--duration"),
    (["replay", "--simulate", "--duration", "0s"], "--duration"),
    (["watch", "BTCUSDT", "--interval", "abc"], "--interval"),
    (["replay", "--simulate", "--interval", "abc"], "--interval"),
    (["watch", "BTCUSDT", "--window", "soon"], "--window"),
    (["export", "x.ndjson", "--to", "t.parquet", "--every", "0ms"], "--every"),
    (["serve", "--simulate", "--idle-timeout", "0s"], "--idle-timeout"),
])
def test_bad_option_values_name_the_option(args, option, tmp_path):
    p = bm(*args, "--url", "ws://127.0.0.1:9") if args[0] == "watch" else bm(*args, cwd=tmp_path)
    assert p.returncode == 2
    line = one_error_line(p.stderr)
    assert line.startswith(f"error: bad {option} "), line
    assert "bad window" not in line


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds ``path`` open (Linux /proc)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            pass
    return False


def _interrupt(p: subprocess.Popen, wait_for: bytes | Path | None, delay: float = 0.0) -> tuple[int, bytes]:
    """Interrupt ``p`` once it has printed ``wait_for`` (bytes) or opened it (a path), after ``delay``."""
    try:
        if isinstance(wait_for, Path):
            deadline = time.monotonic() + 30 * TIMEOUT_FACTOR
            while not _has_open(p.pid, wait_for):
                assert p.poll() is None, "ended before it could be interrupted"
                assert time.monotonic() < deadline, "never opened its input"
                time.sleep(0.01)
        elif wait_for is not None:
            buf = b""
            while wait_for not in buf:
                chunk = p.stdout.readline()  # type: ignore[union-attr]
                assert chunk, "ended before it could be interrupted"
                buf += chunk
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        status = p.wait(20 * TIMEOUT_FACTOR)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return status, p.stderr.read()  # type: ignore[union-attr]


def test_ctrl_c_exits_130_in_every_command(sim_url, tmp_path):
    """One convention: Ctrl-C ends watch, record, serve, replay and export with status 130."""
    big = tmp_path / "big.ndjson"
    # Interrupted while it reads (it has opened the file): however fast the machine, 100 MB of
    # frames outlast the 0.1 s before the signal.
    big.write_bytes((b"\n".join(fixture_lines(SIM)) + b"\n") * 400)
    runs = {
        "watch": ([*BM, "watch", "BTCUSDT", "--json", "--url", sim_url], b'"snapshot"', 0.0),
        "record": ([*BM, "record", "BTCUSDT", "-o", str(tmp_path / "r.ndjson"), "--url", sim_url], None, 3.0),
        "serve": ([*BM, "serve", "--simulate", "--port", "0"], b"serving", 0.0),
        "replay": ([*BM, "replay", "--simulate", "--duration", "10m", "--speed", "1", "--json"], b'"snapshot"', 0.0),
        "export": ([*BM, "export", str(big), "--book", str(tmp_path / "b.parquet"), "--every", "10ms"], big, 0.1),
    }
    for name, (cmd, wait_for, delay) in runs.items():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        status, err = _interrupt(p, wait_for, delay)
        assert status == 130, (name, err)
        assert b"Traceback" not in err and err.strip().splitlines()[-1] == b"interrupted", (name, err)
    assert not (tmp_path / "b.parquet").exists()  # an interrupted export leaves no half table


@pytest.mark.parametrize("uvloop", ["absent", "as installed"])
def test_errors_carry_no_chained_uvloop_import_error(uvloop):
    """A command's error is not chained to "No module named 'uvloop'", whether uvloop is missing
    (forced here by blocking its import) or installed (then its frames may show in a traceback,
    but no import error)."""
    block = "import sys\nsys.modules['uvloop'] = None\n" if uvloop == "absent" else ""
    code = (block + "from bybitmon.app.runner import run_async\n"
            "async def boom():\n    raise RuntimeError('boom')\n"
            "run_async(boom())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "RuntimeError: boom" in p.stderr
    assert "No module named" not in p.stderr and "ImportError" not in p.stderr
    assert "During handling" not in p.stderr and "direct cause" not in p.stderr


@pytest.mark.parametrize("hostile_server", ["quiet"], indirect=True)
def test_a_feed_of_only_pongs_and_junk_warns_in_json_mode(hostile_server):
    p = bm("watch", "BTCUSDT", "--json", "--duration", "13s", "--url", hostile_server)
    assert p.returncode == 0, p.stderr
    assert re.search(rb"WARNING: no market data for BTCUSDT from ws://127\.0\.0\.1:\d+/v5/public/linear in 1\d s "
                     rb"\(\d+ other frames received", p.stderr), p.stderr


def test_production_example_exits_cleanly_on_ctrl_c_and_names_its_source(sim_url):
    p = subprocess.Popen([sys.executable, "-u", str(EXAMPLES / "production.py")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, "BYBITMON_URL": sim_url})
    status, err = _interrupt(p, b"Real-time data", 0.5)
    out = p.stdout.read()  # type: ignore[union-attr]
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
    assert status == 130
    assert b"from Bybit" not in out
    assert b"Shutting down" in out


# -- item 2: a flood of never-subscribed symbols does not grow memory ---------------------------

def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


RSS_BOUND_MB = 150  # README, "What bybitmon does with bad input"


@pytest.mark.parametrize("hostile_server", ["flood"], indirect=True)
@pytest.mark.parametrize("cmd", ["watch", "record"])
def test_flood_of_unsubscribed_symbols_keeps_rss_bounded(hostile_server, cmd, tmp_path):
    args = ["watch", "BTCUSDT", "--json"] if cmd == "watch" else ["record", "BTCUSDT", "-o", str(tmp_path / "f.ndjson")]
    p = subprocess.Popen([*BM, *args, "--url", hostile_server, "--duration", "20s"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    peak = 0.0
    try:
        while p.poll() is None:
            try:
                peak = max(peak, rss_mb(p.pid))
            except FileNotFoundError:
                break
            time.sleep(0.5)
        p.wait(30 * TIMEOUT_FACTOR)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, p.stderr.read()  # type: ignore[union-attr]
    assert 0 < peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB"


# -- Ctrl-C during start-up (issue 14, residual) ------------------------------------------------

def _start_marked(args: list[str]) -> tuple[subprocess.Popen, int]:
    """``bybitmon ARGS`` as the console script runs it, writing one byte to a pipe first: the
    moment Python has started and the script's own first line runs. Returns (process, read end)."""
    r, w = os.pipe()
    code = (f"import os\nos.write({w}, b'R')\nos.close({w})\n"
            "from bybitmon.__main__ import main\nmain()\n")
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         pass_fds=(w,))
    os.close(w)
    return p, r


def _interrupt_once(args: list[str], delay: float) -> tuple[int, bytes]:
    p, r = _start_marked(args)
    try:
        assert os.read(r, 1) == b"R", "the script never started"
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        try:
            # stderr read while waiting: a child that writes much to it cannot block on the pipe.
            _, err = p.communicate(timeout=30 * TIMEOUT_FACTOR)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            raise AssertionError(f"still running 30 s after Ctrl-C at {delay} s; stderr: {err[-2000:]!r}") from None
        return p.returncode, err
    finally:
        os.close(r)
        if p.poll() is None:
            p.kill()
            p.wait()


def _interrupt_at(args: list[str], delay: float) -> tuple[int, bytes]:
    """Ctrl-C ``delay`` s after the script's first line. A Ctrl-C that lands while Python is still
    looking for the package (a few ms; on a loaded machine it can take longer) is Python's own
    start-up, before any line of bybitmon runs: its traceback names no bybitmon file. That
    moment is tried again, later, at most twice; every other outcome is the one checked."""
    for attempt in range(3):
        status, err = _interrupt_once(args, delay * (1 + attempt))
        if not (b"Traceback" in err and b"bybitmon" not in err):
            break
    return status, err


# From the script's first line: while the command line imports (typer, rich, the core: about
# 0.1-0.3 s here), and once the command runs.
EARLY = [0.02, 0.04, 0.07, 0.1, 0.15, 0.25, 0.4]


@pytest.mark.parametrize("delay", EARLY)
def test_ctrl_c_during_start_up_exits_130_quietly(delay):
    status, err = _interrupt_at(["replay", "--simulate", "--duration", "10m", "--speed", "1", "--json"], delay)
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
    assert status == 130, (status, err)
    assert err.strip().splitlines() == [b"interrupted"], err


def test_ctrl_c_during_start_up_exits_130_in_every_command(tmp_path):
    big = tmp_path / "big.ndjson"
    big.write_bytes(b"\n".join(fixture_lines(SIM)) * 400)
    dead = "ws://127.0.0.1:9"  # nothing listens: watch and record keep retrying until Ctrl-C
    commands = {
        "watch": ["watch", "BTCUSDT", "--json", "--url", dead],
        "record": ["record", "BTCUSDT", "-o", str(tmp_path / "r{delay}.ndjson"), "--url", dead],
        "serve": ["serve", "--simulate", "--port", "0"],
        "export": ["export", str(big), "--book", str(tmp_path / "b.parquet"), "--every", "10ms"],
    }
    for name, args in commands.items():
        for delay in (0.02, 0.12, 0.3):
            # A new recording each time: one interrupted after it began is kept, and a second
            # run onto it would be refused (no --force), not interrupted.
            status, err = _interrupt_at([a.replace("{delay}", str(delay)) for a in args], delay)
            assert b"Traceback" not in err, (name, delay, err)
            assert status == 130 and err.strip().splitlines()[-1] == b"interrupted", (name, delay, status, err)
    assert not (tmp_path / "b.parquet").exists()
