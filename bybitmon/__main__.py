"""``python -m bybitmon`` and the ``bybitmon`` script: the command line (bybitmon/cli.py).

A Ctrl-C while the command line is still being imported (typer, rich, the core: a few tenths of
a second) ends the process quietly with status 130, as any later Ctrl-C does: :func:`main`
installs a handler that exits at once before those imports (orjson's among them: see main), and
puts Python's own handler back before the command runs (asyncio installs its handler only over
Python's default one).
"""

import os

# The C module under `signal`: importing `signal` itself runs Python code (enum conversions)
# that a Ctrl-C could interrupt before the handler below is in place.
import _signal as signal

__all__ = ["main"]


def _interrupted_while_starting(signum, frame) -> None:
    try:
        os.write(2, b"interrupted\n")
    finally:
        os._exit(130)


def main() -> None:
    """Run the command line; exit 130 on a Ctrl-C at any moment of start-up."""
    guarded = False
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored by our parent
            signal.signal(signal.SIGINT, _interrupted_while_starting)
            guarded = True
    except ValueError:  # not the main thread: signals are not ours to set
        pass
    # orjson's extension module crashes (SIGSEGV) when a KeyboardInterrupt lands inside its
    # initialisation, which runs Python imports; commands that import it late (serve) were open
    # to that, so it is imported here, where a Ctrl-C exits at once.
    import orjson  # noqa: F401

    from .cli import exit_interrupted
    from .cli import main as run

    try:
        if guarded:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        run()
    except KeyboardInterrupt:  # a Ctrl-C between the handlers, or a second one on the way out
        exit_interrupted()


if __name__ == "__main__":
    main()
