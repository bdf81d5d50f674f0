"""`python -m wfa_notebook ...` runs the command line (see wfa_notebook.cli)."""
from __future__ import annotations

from .cli import main

raise SystemExit(main())
