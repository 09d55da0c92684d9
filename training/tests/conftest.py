"""Puts the repository root on sys.path so the kit imports as `training.*` (the reference
tests import `reference.*` from training/, which pytest puts on the path itself)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
