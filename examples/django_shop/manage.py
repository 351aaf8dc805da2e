#!/usr/bin/env python
"""`python examples/django_shop/manage.py <command>` (from the repository root)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
