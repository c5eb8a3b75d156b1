"""The test-time augmentation views, as data (no torch: checking a search space's `tta` stays instant);
trainables/inference.py applies them."""
from __future__ import annotations

from .errors import ConfigError

SHIFT = 2  # pixels; within training's crop padding (4), so the shifted views are ones the model has seen
# mode -> views as (mirrored, dy, dx)
TTA_VIEWS: dict[str, tuple[tuple[bool, int, int], ...]] = {
    "none": ((False, 0, 0),),
    "flip": ((False, 0, 0), (True, 0, 0)),
    "flip_shift": tuple((f, dy, dx) for f in (False, True)
                        for dy, dx in ((0, 0), (-SHIFT, 0), (SHIFT, 0), (0, -SHIFT), (0, SHIFT))),
}
TTA_MODES = tuple(TTA_VIEWS)


def check_tta(mode: str, key: str = "tta") -> str:
    if mode not in TTA_VIEWS:
        raise ConfigError(f"invalid {key} '{mode}'; choose one of {', '.join(TTA_MODES)} "
                          f"(cost: {', '.join(f'{m} {len(v)}x' for m, v in TTA_VIEWS.items())} inference)", key=key)
    return mode


def tta_cost(mode: str) -> int:
    """Forward passes per image: the factor on inference time."""
    return len(TTA_VIEWS[check_tta(mode)])
