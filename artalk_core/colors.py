"""Colours given by users: a name (``white``), ``#rrggbb``/``#rgb``, ``r,g,b`` (0-255) or three integers."""

from __future__ import annotations

import re
from typing import Any

from artalk_core.constants import MESH_COLOR
from artalk_core.errors import OptionsError

Color = str | tuple[int, int, int]

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
    "pink": (255, 192, 203),
    "skin": (224, 172, 105),
    "artalk": MESH_COLOR,
}


def parse_color(value: Any, what: str = "colour") -> tuple[int, int, int]:
    """``value`` (a colour as above) -> (r, g, b); OptionsError naming ``what`` otherwise."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in NAMED_COLORS:
            return NAMED_COLORS[s]
        m = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", s)
        if m and (s.startswith("#") or len(s) == 6):
            h = m.group(1)
            if len(h) == 3:
                h = "".join(ch * 2 for ch in h)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        parts = [p.strip() for p in s.replace(" ", ",").split(",") if p.strip()]
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            rgb = tuple(int(p) for p in parts)
            if all(0 <= c <= 255 for c in rgb):
                return rgb[0], rgb[1], rgb[2]
        raise OptionsError(f"cannot read {what} {value!r}: use '#rrggbb', a name such as 'white', or 'r,g,b' "
                           f"with 0-255 values")
    try:
        rgb = tuple(int(c) for c in value)
    except (TypeError, ValueError):
        raise OptionsError(f"{what} must be three 0-255 integers, got {value!r}") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise OptionsError(f"{what} must be three 0-255 integers, got {value!r}")
    return rgb[0], rgb[1], rgb[2]


__all__ = ["Color", "NAMED_COLORS", "parse_color"]
