"""Progress bars for the long robustness steps (corrupting test images, predicting an OOD set): tqdm on stderr,
so stdout stays what scripts and tests parse. TQDM_DISABLE=1 turns them off (tqdm reads TQDM_* variables)."""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str = "img"):
    # mininterval 1 s: a log file (stderr not a terminal) gets a line a second at most, not one per batch
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, mininterval=1.0,
                dynamic_ncols=True, leave=True)
