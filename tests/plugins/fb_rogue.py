"""What a rogue node's patch modules share: the settings of this deviation (set by tests/rogue.py).

A patch module (`fb_rogue_<topic>.py` beside this file) imports `rogue_settings` and, at import time, replaces
the functions its deviation needs; it is imported by the rogue node and by every worker process it spawns. The
settings are the file `$FB_ROGUE_FILE` when it exists (read at each import: a step's fresh worker follows what
`reconfigure_rogue` last wrote there), else the JSON in `$FB_ROGUE`.
"""

from __future__ import annotations

import json
import os
from typing import Any


def rogue_settings() -> dict[str, Any]:
    """The settings of this deviation (empty for an honest node)."""
    path = os.environ.get("FB_ROGUE_FILE", "")
    if path and os.path.exists(path):
        with open(path) as handle:
            raw = handle.read()
    else:
        raw = os.environ.get("FB_ROGUE", "")
    return json.loads(raw) if raw else {}


def rogue_setting(name: str, default: Any = None) -> Any:
    """One setting, or `default` when the node was not told to deviate that way."""
    return rogue_settings().get(name, default)
