"""Every configuration variable, parsed and validated in one place.

`Settings.from_env()` is the only code in otel_bridge that reads the environment. It runs at
startup (inside `instrument()`), never at import and never per request, and it never writes to
the environment. An invalid value raises `ConfigError` naming the variable, the value and the
expected form.
"""

from __future__ import annotations

from otel_bridge.config.parsers import VIEW_NAMES, Variable
from otel_bridge.config.settings import Settings, variables_table
from otel_bridge.config.variables import VARIABLES
from otel_bridge.errors import ConfigError

__all__ = ["VARIABLES", "VIEW_NAMES", "ConfigError", "Settings", "Variable", "variables_table"]
