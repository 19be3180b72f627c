"""The methods a report knows: their order and colours, the same in every table and figure."""

from __future__ import annotations

from collections.abc import Iterable

from cryo_pipeline.config.methods import CN, CORRUPTED, CRYOGEN, ISONET, SCORED, WBP

METHOD_ORDER = SCORED
"""Order of methods everywhere: the input as given, the baseline, then the corrections."""

METHOD_COLORS = {
    "ground truth": "black",
    CORRUPTED: "0.5",
    WBP: "tab:blue",
    ISONET: "tab:orange",
    CRYOGEN: "tab:green",
    CN: "tab:red",
}


def method_rank(method: str) -> int:
    """Position of ``method`` in :data:`METHOD_ORDER`; unknown methods come last."""
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """Unique ``methods`` in :data:`METHOD_ORDER` (unknown ones last, in first-seen order)."""
    unique = list(dict.fromkeys(methods))
    return sorted(unique, key=lambda m: (method_rank(m), unique.index(m)))


def method_color(method: str) -> str | None:
    """Matplotlib colour of ``method``; ``None`` lets matplotlib choose (unknown methods)."""
    return METHOD_COLORS.get(method)
