"""The modules a sweep needs late, imported when they are needed: Ray and Tune take a second to import (on the
start-up's critical path only where Ray starts, in the background); the report's matplotlib and pandas only at the
end."""
from __future__ import annotations


def ray_adapter():
    from .. import ray_adapter

    return ray_adapter


def report():
    from .. import report

    return report
