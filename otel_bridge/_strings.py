"""Turning tag values into strings the way PHP does (Pinba's tags are PHP strings)."""

from __future__ import annotations

import math

__all__ = ["php_string"]


def php_string(value: object) -> str:
    """`(string)$value` as PHP 8 writes it (precision=14 for floats)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        if value == 0:
            return "-0" if math.copysign(1.0, value) < 0 else "0"
        text = f"{value:.14G}"
        if "E" in text:
            mantissa, exponent = text.split("E")
            if "." not in mantissa:
                mantissa += ".0"
            return f"{mantissa}E{int(exponent):+d}"
        return text
    return str(value)
