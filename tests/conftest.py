from __future__ import annotations

import sys
from pathlib import Path

# tests import small helper modules (toy_plugins) that live beside them
sys.path.insert(0, str(Path(__file__).parent))
