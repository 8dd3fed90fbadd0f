"""``bybitmon record``: every received frame verbatim, with its receive time, for replay."""

from __future__ import annotations

import logging
import time
from typing import TextIO

from ..core.monitor import Monitor
from ..errors import printable
from ..errors import RecordingError
from ..transport.feed import LiveFeed
from .files import check_outputs
from .live import LiveOptions, Refusals, Stop, close_recording, flush_recording, log_to
from .watch import asked_topics, recording_header

__all__ = ["run_record"]


async def run_record(opts: LiveOptions, path: str, *, stderr: TextIO, progress: bool) -> int:
    """Run ``bybitmon record`` until Ctrl-C (or ``duration_s``); returns the exit status.

    The output is checked before connecting: an existing file is refused unless ``opts.force``.

    Raises:
        RecordingError: the file cannot be written, or no data frame arrived.
        SubscriptionError: the server refused subscriptions (at once when it refused them all);
            what was delivered is in the file.
    """
    from ..transport.recording import RecordingWriter

    check_outputs([("-o", path)], force=opts.force)
    monitor = Monitor(opts.category, opts.window_ms, opts.bps)
    stop = Stop()
    handler = log_to(stderr)
    refusals = Refusals(asked_topics(opts), stop)
    feed = LiveFeed(monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth, on_subscribe_error=refusals,
                    **opts.client_kwargs)
    data_frames = 0

    def count(recv_ns: int, conn: str, raw: str) -> None:
        nonlocal data_frames
        if raw.startswith('{"topic"'):
            data_frames += 1

    feed.extra_on_frame = count
    shown = printable(path)
    try:
        feed.recorder = RecordingWriter(path, header=recording_header(opts, feed))
        deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
        last_report = time.monotonic()
        stop.install()
        await feed.start(opts.symbols)
        while not stop.is_set:
            if deadline and time.monotonic() >= deadline:
                break
            await stop.wait(0.25)
            flush_recording(feed, stop)
            if progress and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                states = ", ".join(f"{h.label} {h.state}" for h in feed.health)
                print(f"recording {shown}: {feed.recorder.frames} frames ({states})", file=stderr)
    finally:
        stop.uninstall()
        await feed.stop()
        close_recording(feed, stop)
        logging.getLogger("bybitmon").removeHandler(handler)
    if stop.error is not None:
        raise stop.error
    if feed.fatal is not None:
        raise feed.fatal
    if data_frames == 0 and not stop.status:
        raise RecordingError(f"nothing was recorded to {shown}: no data frame arrived from "
                             f"{printable(feed.client.url)}")
    print(f"recorded {feed.recorder.frames} frames to {shown}", file=stderr)
    return stop.outcome(refusals)
