"""The distribution's version, in a module of its own: everything can import it without
importing the package's public API (and so the engine) first."""

from __future__ import annotations

__version__ = "0.1.0"
