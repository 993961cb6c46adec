from __future__ import annotations

import sys
from pathlib import Path

# tests/support.py is imported as `support` from every test module.
sys.path.insert(0, str(Path(__file__).parent))
