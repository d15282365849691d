"""The integer specification in code: geometry presets and memory-word layouts."""

from .geometry import PRESETS, CoreGeometry
from .words import RouteKind, SignMode, memories

__all__ = ["CoreGeometry", "PRESETS", "SignMode", "RouteKind", "memories"]
