"""One colour per strategy, the same in the report's plots and every tab of the lab.

The lab's three entrants keep the colours the race has always given them (from scratch red, the frozen
body blue, the fine-tunes green, darker as more of the body trains); every other registered strategy
has a fixed colour of its own, and an entry with options of its own (``full[guard=ewc]``) or on another
backbone (``probe on efficientnet-lite0``) a shade derived from its name, so it never changes between
runs. The chance line is grey and dashed everywhere, never a strategy's colour.
"""

from __future__ import annotations

import colorsys
import hashlib

__all__ = ["CHANCE_COLOR", "strategy_color"]

CHANCE_COLOR = "#8a8f98"
FIXED = {
    "scratch": "#d62728", "scratch-small": "#f46d43", "zero-shot": "#8c564b", "prototype": "#bc80bd",
    "probe": "#1f77b4", "full": "#1b7837", "lldr": "#5aae61", "lora": "#9467bd", "dora": "#c51b7d",
    "vera": "#e377c2", "adapter": "#17becf", "ia3": "#bcbd22", "ln-tuning": "#7f7f7f", "bitfit": "#ff7f0e",
    "prefix": "#6a3d9a", "prompt": "#b15928", "contrastive": "#fdb462", "coral": "#01665e", "dann": "#35978f",
    "iw": "#80cdc1", "bn-adapt": "#8073ac", "tent": "#542788",
}


def _shade(name: str, lightness: float) -> str:
    """A colour for ``name`` from its hash (stable across runs and machines)."""
    hue = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.55)
    return "#{:02x}{:02x}{:02x}".format(*(round(v * 255) for v in (r, g, b)))


def strategy_color(entry: str) -> str:
    """The colour of a race entry (a strategy spec, with options or a backbone after it)."""
    if entry in FIXED:
        return FIXED[entry]
    name, _, k = entry.partition(":")
    if name == "partial" and k.isdigit():  # greens between the probe's body (none trains) and full's
        return _green(int(k))
    return _shade(entry, 0.45)


def _green(k: int) -> str:
    lightness = max(0.3, 0.62 - 0.05 * k)
    r, g, b = colorsys.hls_to_rgb(0.33, lightness, 0.5)
    return "#{:02x}{:02x}{:02x}".format(*(round(v * 255) for v in (r, g, b)))
