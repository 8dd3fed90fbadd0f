"""Rich renderables built from snapshots: the activity table, the ladder, formatting."""

from .table import *  # noqa: F401,F403
from .table import __all__  # noqa: F401
