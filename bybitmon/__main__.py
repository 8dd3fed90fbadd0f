"""``python -m bybitmon``: the command line (bybitmon/cli.py)."""

import os
import sys

try:
    from .cli import exit_interrupted, main
except KeyboardInterrupt:  # Ctrl-C while still starting up: the same status as any Ctrl-C
    sys.stderr.write("interrupted\n")
    os._exit(130)

try:
    main()
except KeyboardInterrupt:  # a second Ctrl-C on the way out
    exit_interrupted()
