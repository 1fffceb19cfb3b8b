"""Run this checkout's `xmodal` as a subprocess: what the demo starts, and the test and bench harnesses too.

``python -m cli`` from this checkout rather than the ``xmodal`` console script: the virtual environment is
shared between clones, so its ``xmodal`` may point at another checkout's code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XMODAL = (sys.executable, "-m", "cli")


def with_root(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this checkout first on PYTHONPATH, so ``python -m cli`` finds it from any directory."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
