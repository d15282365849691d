"""Board geometries: the largest neurocore each supported board holds (docs/boards.md).

They are the ``icebreaker`` and ``ulx3s`` presets of :data:`neurocore.spec.geometry.PRESETS`
(the one geometry dataclass); this module says why each is as large as it is.  Sizes are
powers of two; arithmetic widths are the spec defaults.
What bounds each board:

* ``icebreaker`` (iCE40UP5K: 5280 LUT4, 30 x 4 kbit EBR, 4 x 256 kbit SPRAM, 8 DSP): the
  synapse memory lives in all four SPRAMs (32 K words of up to 32 bits); every other memory,
  the input/spike buffers and the bridge's buffers and event FIFO share the 30 EBRs, which
  limits compartments to 128 (accumulators ``128 x 8`` x 18 bits, state 48 bits wide, ...)
  and axons to 512 (1024 axons need more EBRs than there are).  One update lane and one
  synapse lane, and no idle skip (its flags, one register per compartment and delay slot,
  would not fit the 5280 logic cells).  It holds the digits MLP
  (``sw.models.digits_mlp``: 76 compartments, 4115 synapses).
* ``ulx3s`` (ECP5-85F: 83640 LUT4, 208 x 18 kbit EBR, 156 multipliers): block RAM only,
  8 update lanes and 4 synapse lanes (docs/rtl.md §Lanes).  Each synapse lane keeps its own
  accumulators (``k_s x n_compartments x n_delay_slots`` entries of 18 bits), so the lanes
  trade EBRs for speed: 2048 compartments with a 4-slot ring (the Quartz compiler uses
  delays 0 and 1) and a 32 K-word synapse memory in 4 banks leave room for the bridge; 4096
  compartments or 64 K synapses with these lanes do not fit.  8 update lanes use 32 of the
  156 multipliers.  It holds the digits CNN (``sw.models.digits_cnn``: 975 compartments,
  21675 synapses at T=16; with conv descriptors, 8 of its 16, 2648 dense and 1424 kernel
  words).  The conv descriptors (16 x 61 bits) sit in LUT RAM; the conv walker adds a few
  small multipliers (docs/rtl.md §2.3) — not yet measured by ``make boards-report``.
  ``icebreaker`` has none (``n_conv = 0``: no logic or EBR to spare).

A network one board core cannot hold goes onto the board's chip: the ``ulx3s`` and
``icebreaker`` presets of :data:`neurocore.spec.geometry.CHIP_PRESETS` (their rationale, an
EBR estimate, sits beside their numbers there; docs/spec.md §10).

Resource use and timing of each build: docs/boards.md (``make boards-report``).
"""

from __future__ import annotations

from ..spec.geometry import PRESETS, CoreGeometry

__all__ = ["BOARD_GEOMETRIES", "board_geometry"]

#: The board presets of :data:`neurocore.spec.geometry.PRESETS`, by board name.
BOARD_GEOMETRIES: dict[str, CoreGeometry] = {name: PRESETS[name] for name in ("icebreaker", "ulx3s")}


def board_geometry(board: str) -> CoreGeometry:
    try:
        return BOARD_GEOMETRIES[board]
    except KeyError:
        raise KeyError(f"unknown board {board!r}; known: {sorted(BOARD_GEOMETRIES)}") from None
