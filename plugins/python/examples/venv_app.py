"""What the embedded interpreter is (``test_e2e_venv.py``): its prefixes,
``sys.path`` and where a package comes from, to check that ``settings.venv``
starts it as the virtual environment's own ``python`` would."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from spikard import App

app = App()


@app.get("/interpreter")
def interpreter(probe: str = "") -> dict[str, Any]:
    spec = importlib.util.find_spec(probe) if probe else None
    return {
        "prefix": sys.prefix,
        "exec_prefix": sys.exec_prefix,
        "base_prefix": sys.base_prefix,
        "executable": sys.executable,
        "path": sys.path,
        "probe": spec.origin if spec is not None else None,
        "utf8_mode": sys.flags.utf8_mode,
    }
