"""Synapse-side memory of a compiled program per layer, in words, bits and block RAMs per board.

The synapse side of a core is the synapse memory (dense synapse-list words and conv kernel
words, spec §3.5) and the conv descriptor memory.  :func:`memory_rows` counts them per layer
(from the layer reports) and in total (from :meth:`CoreConfig.summary`), and converts words to
bits with the word widths of each board preset (:data:`BOARDS`) and to block RAMs with the
board's block shapes: ``min over (depth, width) shapes of ⌈words/depth⌉·⌈bits/width⌉`` (the
synapse memory only: the few descriptor words count in bits, not blocks).  A
layer's block count is what its words alone would take (blocks are not shared across layers),
so the layers' counts may sum to more than the total's.
"""

from __future__ import annotations

import math

import numpy as np

from ..spec.geometry import PRESETS, CoreGeometry
from ..spec.words import conv_layout, synapse_layout

__all__ = ["BOARDS", "memory_rows", "blocks", "word_bits", "chip_rows"]

#: Board preset → (block name, the block's (depth, width) shapes) of the memory that holds the
#: synapse side: ECP5 EBR (18 kbit) on the ULX3S, SPRAM (256 kbit, 16 K × 16) on the iCEBreaker.
BOARDS: dict[str, tuple[str, tuple[tuple[int, int], ...]]] = {
    "ulx3s": ("EBR", ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))),
    "icebreaker": ("SPRAM", ((16384, 16),)),
}


def blocks(words: int, bits: int, shapes) -> int:
    """Block RAMs that hold ``words`` words of ``bits`` bits, the best block shape chosen."""
    if words <= 0 or bits <= 0:
        return 0
    return min(math.ceil(words / d) * math.ceil(bits / w) for d, w in shapes)


def word_bits(g: CoreGeometry) -> tuple[int, int]:
    """(synapse word, conv descriptor word) widths of geometry ``g`` (a descriptor as if the
    core had conv memory)."""
    gc = g if g.n_conv else g.replace(n_conv=1)
    return synapse_layout(g).size, conv_layout(gc).size


def memory_rows(layers, summary: dict) -> list[dict]:
    """Per layer, then ``total``: compartments, descriptors, kernel and dense words, and per
    board preset the bits and block RAMs of those words."""
    rows = [dict(name=r.name, compartments=r.neurons, descriptors=r.descriptors,
                 kernel_words=r.kernel_words, dense_words=r.synapses) for r in layers]
    rows.append(dict(name="total", compartments=summary["compartments_used"],
                     descriptors=summary["conv_descriptors_used"],
                     kernel_words=summary["kernel_words_used"],
                     dense_words=summary["synapses_used"]))
    for row in rows:
        row["words"] = row["kernel_words"] + row["dense_words"] + row["descriptors"]
        for board, (_, shapes) in BOARDS.items():
            syn_bits, conv_bits = word_bits(PRESETS[board])
            syn_words = row["kernel_words"] + row["dense_words"]
            row[f"{board}_bits"] = syn_words * syn_bits + row["descriptors"] * conv_bits
            row[f"{board}_blocks"] = blocks(syn_words, syn_bits, shapes)
    return rows


def chip_rows(program) -> list[str]:
    """Fit report lines of a chip program: per core its compartments, dense and kernel synapse
    words, descriptors, axons and route words against the core's capacity, and the estimated
    synaptic operations (SOPs), flits and flit hops (mesh distance) per image
    (:func:`~neurocore.sw.place.chip_load`); then the cores each layer sits on."""
    chip_cfg = program.chip_config()
    chip, cg = chip_cfg.chip, chip_cfg.chip.core
    load = program.chip_load or {}
    sops, flits, hops = load.get("sops"), load.get("flits"), load.get("hops")
    est = (f"SOPs, flits and hops per image: an estimate from a golden run of {load['images']} "
           "calibration images" if sops else "SOPs and flits: no calibration run")
    rows = [f"chip {chip.name!r}: {program.partition.cores_used()} of {chip.n_cores} cores of "
            f"{cg.n_compartments} compartments, {cg.n_synapses} synapse words, {cg.n_conv} "
            f"descriptors, {cg.n_axons} axons, {cg.n_routes} routes; {est}",
            "  core  compartments  dense w  kernel w    words  descr  axons  routes      SOPs"
            "     flits  flit hops"]
    for k, cfg in enumerate(chip_cfg.cores):
        s = cfg.summary()
        words = s["synapses_used"] + s["kernel_words_used"]
        rows.append(f"  {k:>4} {s['compartments_used']:>13} {s['synapses_used']:>8} "
                    f"{s['kernel_words_used']:>9} {words:>8} {s['conv_descriptors_used']:>6} "
                    f"{s['axons_used']:>6} {s['routes_used']:>7} "
                    f"{(sops[k] if sops else float('nan')):>9.0f} "
                    f"{(flits[k] if flits else float('nan')):>9.0f} "
                    f"{(hops[k] if hops else float('nan')):>10.0f}")
    core_of = program.partition.core_of
    for name, ids in program.neuron_ids.items():
        cores = np.unique(core_of[np.asarray(ids)])
        rows.append(f"  {name:<29} on core{'s' if cores.size > 1 else ''} "
                    + ", ".join(str(int(k)) for k in cores))
    return rows
