from __future__ import annotations

import not_an_installed_module  # type: ignore[import-not-found]  # noqa: F401
