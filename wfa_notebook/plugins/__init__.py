"""Plugin base classes (and, in their own modules, the built-in plugin families)."""
from __future__ import annotations

from .base import Plugin, SourcePlugin
from .options import REQUIRED, Option
from .streaming import StreamingPlugin

__all__ = ["Plugin", "SourcePlugin", "StreamingPlugin", "Option", "REQUIRED"]
