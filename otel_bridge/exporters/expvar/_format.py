"""Go's spellings, so `/debug/vars` is byte-shaped like Go's `expvar` handler (Go 1.19 source:
`src/expvar/expvar.go`, `strconv.FormatFloat`, `encoding/json`).

- `Float` vars: `strconv.FormatFloat(v, 'g', -1, 64)` → `go_float()`.
- `Func` values and `memstats` floats: `encoding/json` → `json_float()`.
- keys: Go's `%q` → `go_quote()` (JSON-compatible for every printable key; control characters,
  which Go writes as invalid JSON escapes, are written as valid JSON `\\u00XX` instead).
- non-finite floats: Go writes `NaN`/`+Inf` (invalid JSON); we write `null`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["go_float", "go_quote", "json_float", "json_value"]

_encode_string = json.encoder.encode_basestring


def _shortest(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of |value| (no trailing zeros), and the decimal exponent of
    the first digit (scientific notation's exponent)."""
    # repr() gives the shortest round-trip digits (as Go's shortest formatting does), either
    # as "ddd.ddd" or as "d.ddde±x"; read the digits and the exponent off it.
    text = repr(abs(value))
    mantissa, _, exponent_text = text.partition("e")
    integer, _, fraction = mantissa.partition(".")
    if exponent_text:
        return (integer + fraction).rstrip("0") or "0", int(exponent_text)
    if integer != "0":
        return (integer + fraction).rstrip("0"), len(integer) - 1
    significant = fraction.lstrip("0")
    return significant.rstrip("0"), len(significant) - len(fraction) - 1


def go_float(value: float) -> str:
    """`strconv.FormatFloat(value, 'g', -1, 64)`: shortest digits, %e when exp < -4 or ≥ 6."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent = _shortest(value)
    sign = "-" if value < 0 else ""
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + _plain(digits, exponent)


def json_float(value: float) -> str:
    """`encoding/json`: plain decimal unless |v| < 1e-6 or ≥ 1e21, exponent unpadded."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent = _shortest(value)
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent)}"
    return sign + _plain(digits, exponent)


def _plain(digits: str, exponent: int) -> str:
    if exponent < 0:
        return "0." + "0" * (-exponent - 1) + digits
    if exponent + 1 >= len(digits):
        return digits + "0" * (exponent + 1 - len(digits))
    return digits[: exponent + 1] + "." + digits[exponent + 1 :]


def go_quote(key: str) -> str:
    """A key as Go's `%q` writes it, kept valid JSON."""
    quoted: str = _encode_string(key)
    if "\u2028" in quoted or "\u2029" in quoted:
        quoted = quoted.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return quoted


def json_value(value: Any) -> str:
    """Compact JSON as `json.Marshal` writes a Go value: map keys sorted, HTML characters
    escaped, floats in encoding/json's spelling, NaN/Inf as null, never an exception.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return _html_escape(_encode_string(value))
    if isinstance(value, Mapping):
        items = sorted((str(key), item) for key, item in value.items())
        return (
            "{"
            + ",".join(f"{_html_escape(_encode_string(k))}:{json_value(v)}" for k, v in items)
            + "}"
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ",".join(json_value(item) for item in value) + "]"
    return _html_escape(_encode_string(str(value)))


def _html_escape(quoted: str) -> str:
    # encoding/json escapes <, > and & (and U+2028/9) inside strings.
    if "<" in quoted or ">" in quoted or "&" in quoted or "\u2028" in quoted or "\u2029" in quoted:
        quoted = (
            quoted.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return quoted
