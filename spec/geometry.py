"""Core geometry: the one configuration dataclass that every width and depth derives from.

A :class:`CoreGeometry` fixes the size of every memory of one neurocore and the width of
every arithmetic field.  The golden model, the Lava harness, the image packer and the RTL all
take a geometry; none of them hard-codes a number.  Named presets live in :data:`PRESETS`
and are reached through :meth:`CoreGeometry.preset`.

The arithmetic widths default to Loihi 1 / Lava's bit-accurate LIF (docs/spec.md §2).  They
are fields, so a width change is a one-line change, but the Lava cross-check only holds for
the defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["CoreGeometry", "PRESETS", "bits_for", "ConfigError", "LANE_CHOICES", "MAX_FIELD",
           "ChipGeometry", "CHIP_PRESETS", "MAX_CORES"]

#: Largest number of cores a chip may have (Loihi 1: 128 neurocores).
MAX_CORES = 128

#: Allowed numbers of parallel update lanes (``k_u``) and synapse lanes (``k_s``).
LANE_CHOICES = (1, 2, 4, 8)

#: Largest value of each field.  Depths: host-link addresses and counts are 24-bit.  Widths:
#: the golden model computes in int64 (u, v ≤ 32 bits; ``x << shift`` and products with the
#: decay factor stay below 2**63) and every memory word fits 64 bits.
MAX_DEPTH = 1 << 24
MAX_FIELD = {"state_bits": 32, "decay_bits": 24, "vth_bits": 31, "bias_mant_bits": 31,
             "bias_exp_bits": 5, "weight_bits": 16, "weight_exp_bits": 4, "act_shift": 31,
             "vth_shift": 31, "decay_shift": 24, "conv_channel_bits": 12, "conv_side_bits": 12,
             "n_conv": 1 << 10, "n_cores": MAX_CORES, "reset_bits": 16}


class ConfigError(ValueError):
    """A geometry or network that the core cannot hold; the message names value and place."""


def bits_for(count: int) -> int:
    """Return the number of bits needed to index ``count`` items (at least 1)."""
    if count < 1:
        raise ValueError(f"count must be positive, not {count!r}")
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True, kw_only=True)
class CoreGeometry:
    """Sizes of one neurocore's memories and widths of its arithmetic.

    Memory depths (entries):

    - ``n_compartments``: compartments (CUBA LIF units); also the depth of the compartment
      config, state and axon-map memories.
    - ``n_axons``: input axons; depth of the synapse map.  Host spikes and the core's own
      routed spikes both arrive on an axon id.
    - ``n_synapses``: synapse memory words, one synapse per word.
    - ``n_routes``: axon-config (route) words, one destination per word.
    - ``n_profiles``: compartment profiles (du, dv, du_offset, vth).
    - ``n_delay_slots``: dendritic-accumulator ring depth D; synaptic delays are 0..D-1.
    - ``n_outputs``: output port ids that routes may address.
    - ``max_fanout``: longest synapse list one axon may own (synapse-map ``length`` field).
    - ``max_routes``: longest route list one compartment may own (axon-map ``length`` field).

    Arithmetic widths (bits): ``state_bits`` (u and v, signed), ``decay_bits`` (du, dv),
    ``vth_bits`` (threshold mantissa), ``bias_mant_bits`` (signed), ``bias_exp_bits``,
    ``weight_bits`` (mantissa), ``weight_exp_bits`` (unsigned exponent), ``act_shift`` and
    ``vth_shift`` (the ≪6 alignments), ``decay_shift`` (12: decays are d/4096).

    Parallelism (docs/rtl.md §Lanes): ``k_u`` compartment-update lanes (compartment ``cx``
    lives in bank ``cx mod k_u``; ``k_u`` must divide ``n_compartments``) and ``k_s`` synapse
    lanes (synapse word ``a`` lives in bank ``a mod k_s``; ``k_s`` must divide ``n_synapses``),
    each lane with its own bank of dendritic accumulators.  Both are one of
    :data:`LANE_CHOICES`; they change the schedule, never a result.  ``idle_skip`` (1 or 0)
    turns the idle-compartment skip (spec §2.5) on or off: its flags cost one register per
    update group and delay slot, more than the smallest FPGA can spare.

    Convolutions (spec §3.5): ``n_conv`` conv descriptors (0: the core has no conv memory and
    its synapse-map words no conv fields), ``conv_channel_bits`` (channel counts and channel
    coordinates, ≤ 2**bits − 1) and ``conv_side_bits`` (heights, widths and row/column
    coordinates).

    Chips (spec §10): ``n_cores`` is the number of cores of the chip this core sits in; with
    ``n_cores > 1`` every route word has a ``core`` field (the destination core of an AXON
    route), with 1 (a single core) it has none and AXON means "this core".

    Timing (docs/rtl.md §2.1): ``read_regs`` (0 or 1) registers block-RAM data before any
    logic uses it, in the update pipeline and the synapse pipeline, and the idle-skip
    scanner's choice before it addresses the banks (spec/schedule.py, ``issue_stages`` and
    the others): 1 for ECP5 at 100 MHz; 0 spares the flip-flops on the iCE40UP5K, whose
    30 MHz does not need them.  It changes the schedule (two UPDATE cycles and one SPIKE
    cycle per step), never a result.

    Periodic reset (spec §11): ``reset_bits`` is the width of a profile's ``reset_interval``
    and ``reset_offset`` fields (0: the profile word has neither, and no compartment is ever
    reset).  Intervals and offsets up to ``2**reset_bits − 1``.
    """

    name: str = "custom"
    n_compartments: int = 256
    n_axons: int = 512
    n_synapses: int = 8192
    n_routes: int = 1024
    n_profiles: int = 8
    n_delay_slots: int = 16
    n_outputs: int = 256
    max_fanout: int = 1024
    max_routes: int = 16

    state_bits: int = 24
    decay_bits: int = 12
    vth_bits: int = 17
    bias_mant_bits: int = 13
    bias_exp_bits: int = 3
    weight_bits: int = 8
    weight_exp_bits: int = 3
    act_shift: int = 6
    vth_shift: int = 6
    decay_shift: int = 12

    k_u: int = 1
    k_s: int = 1
    idle_skip: int = 1

    n_conv: int = 0
    conv_channel_bits: int = 8
    conv_side_bits: int = 6

    n_cores: int = 1

    reset_bits: int = 0

    read_regs: int = 0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            least = 0 if f.name in ("idle_skip", "n_conv", "reset_bits", "read_regs") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"CoreGeometry.{f.name} must be a positive integer, not {value!r}")
            limit = MAX_FIELD.get(f.name, MAX_DEPTH)
            if value > limit:
                raise ValueError(f"CoreGeometry.{f.name}={value} exceeds its limit {limit}")
        if not isinstance(self.name, str):
            raise ValueError(f"CoreGeometry.name must be a string, not {self.name!r}")
        if self.decay_bits > self.decay_shift:
            raise ValueError(f"decay_bits={self.decay_bits} exceeds decay_shift="
                             f"{self.decay_shift}: a decay would exceed 100 %")
        if self.acc_bits < 2:
            raise ValueError(f"state_bits={self.state_bits} leaves no accumulator bits after "
                             f"act_shift={self.act_shift}")
        if self.max_fanout > self.n_synapses:
            raise ValueError(f"max_fanout={self.max_fanout} exceeds n_synapses={self.n_synapses}")
        if self.max_routes > self.n_routes:
            raise ValueError(f"max_routes={self.max_routes} exceeds n_routes={self.n_routes}")
        if self.read_regs not in (0, 1):
            raise ConfigError(f"CoreGeometry.read_regs={self.read_regs} must be 0 (block-RAM "
                              "data used in its read cycle) or 1 (registered first)")
        if self.idle_skip not in (0, 1):
            raise ConfigError(f"CoreGeometry.idle_skip={self.idle_skip} must be 0 (update every "
                              f"compartment below n_active) or 1 (skip idle ones)")
        for lanes, depth, what in ((self.k_u, self.n_compartments, "n_compartments"),
                                   (self.k_s, self.n_synapses, "n_synapses")):
            name = "k_u" if what == "n_compartments" else "k_s"
            if lanes not in LANE_CHOICES:
                raise ConfigError(f"CoreGeometry.{name}={lanes} is not one of {LANE_CHOICES}")
            if depth % lanes:
                raise ConfigError(f"CoreGeometry.{name}={lanes} does not divide {what}={depth} "
                                  f"into equal banks")

    # ---- derived widths -------------------------------------------------------------
    @property
    def acc_bits(self) -> int:
        """Width of one dendritic accumulator entry: ``state_bits - act_shift`` (wraps)."""
        return self.state_bits - self.act_shift

    @property
    def cx_bits(self) -> int:
        return bits_for(self.n_compartments)

    @property
    def axon_bits(self) -> int:
        return bits_for(self.n_axons)

    @property
    def synapse_addr_bits(self) -> int:
        return bits_for(self.n_synapses)

    @property
    def route_addr_bits(self) -> int:
        return bits_for(self.n_routes)

    @property
    def profile_bits(self) -> int:
        return bits_for(self.n_profiles)

    @property
    def delay_bits(self) -> int:
        return bits_for(self.n_delay_slots)

    @property
    def fanout_bits(self) -> int:
        """Width of a synapse-map ``length`` field (0..max_fanout)."""
        return self.max_fanout.bit_length()

    @property
    def route_len_bits(self) -> int:
        return self.max_routes.bit_length()

    @property
    def route_target_bits(self) -> int:
        """Width of a route's destination: an axon id or an output id."""
        return max(self.axon_bits, bits_for(self.n_outputs))

    @property
    def bank_depth(self) -> int:
        """Compartments per update bank: ``n_compartments / k_u``."""
        return self.n_compartments // self.k_u

    @property
    def synapse_bank_depth(self) -> int:
        """Synapse words per synapse bank: ``n_synapses / k_s``."""
        return self.n_synapses // self.k_s

    @property
    def conv_bits(self) -> int:
        """Width of a synapse-map ``conv`` field: 0 (none) or descriptor index + 1; 0 bits when
        the core has no conv memory."""
        return bits_for(self.n_conv + 1) if self.n_conv else 0

    @property
    def conv_coord_bits(self) -> tuple[int, int]:
        """Widths of a synapse-map word's (channel, row/column) input coordinates."""
        return (self.conv_channel_bits, self.conv_side_bits) if self.n_conv else (0, 0)

    @property
    def core_bits(self) -> int:
        """Width of a route word's ``core`` field: 0 bits on a single core."""
        return bits_for(self.n_cores) if self.n_cores > 1 else 0

    @property
    def max_reset_interval(self) -> int:
        """Largest periodic-reset interval a profile can hold (0: the core has no reset)."""
        return (1 << self.reset_bits) - 1 if self.reset_bits else 0

    @property
    def max_delay(self) -> int:
        return self.n_delay_slots - 1

    @property
    def state_max(self) -> int:
        """``2**(state_bits-1)``: u wraps into ``(-state_max, state_max]``."""
        return 1 << (self.state_bits - 1)

    # ---- presets -------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "CoreGeometry":
        """Return the named preset (see :data:`PRESETS`), or its periodic-reset variant
        ``"<preset>-reset"``: the preset with ``reset_bits = RESET_VARIANT_BITS`` (spec §11)."""
        base = name[:-len(RESET_SUFFIX)] if name.endswith(RESET_SUFFIX) else None
        if base in PRESETS:
            return PRESETS[base].replace(name=name, reset_bits=RESET_VARIANT_BITS)
        try:
            return PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown geometry preset {name!r}; known: {sorted(PRESETS)} "
                           f"and each with {RESET_SUFFIX!r}") from None

    def replace(self, **changes) -> "CoreGeometry":
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


#: Periodic-reset variant of a preset (:meth:`CoreGeometry.preset`): ``"<preset>-reset"`` has
#: reset fields of ``RESET_VARIANT_BITS`` bits (intervals up to 2047 steps; a Quartz pipeline
#: period is far below); every preset's profile word stays within 64 bits with them.
RESET_SUFFIX = "-reset"
RESET_VARIANT_BITS = 11

PRESETS: dict[str, CoreGeometry] = {
    # Unit tests and the RTL regression: small enough for fast Verilator builds.
    "tiny": CoreGeometry(name="tiny", n_compartments=64, n_axons=128, n_synapses=2048,
                         n_routes=256, n_profiles=4, n_delay_slots=8, n_outputs=64,
                         max_fanout=256, max_routes=8, n_conv=8, read_regs=1),
    # Golden/Lava cross-checks: up to 256 compartments.
    "small": CoreGeometry(name="small", n_compartments=256, n_axons=512, n_synapses=8192,
                          n_routes=1024, n_profiles=8, n_delay_slots=16, n_outputs=256,
                          max_fanout=1024, max_routes=16, n_conv=8, read_regs=1),
    # Loihi 1 core proportions: 1024 compartments, 4096 axons, 16k synapse words.
    "loihi": CoreGeometry(name="loihi", n_compartments=1024, n_axons=4096, n_synapses=16384,
                          n_routes=4096, n_profiles=32, n_delay_slots=8, n_outputs=1024,
                          max_fanout=1024, max_routes=64, n_conv=16, read_regs=1),
    # The largest cores that fit the open FPGA boards (rationale: boards/presets.py,
    # resource use and timing: docs/boards.md).
    "icebreaker": CoreGeometry(name="icebreaker", n_compartments=128, n_axons=256,
                               n_synapses=32768, n_routes=256, n_profiles=8, n_delay_slots=4,
                               n_outputs=128, max_fanout=256, max_routes=4, idle_skip=0),
    "ulx3s": CoreGeometry(name="ulx3s", n_compartments=2048, n_axons=2048, n_synapses=32768,
                          n_routes=2048, n_profiles=16, n_delay_slots=4, n_outputs=1024,
                          max_fanout=1024, max_routes=16, k_u=8, k_s=4, n_conv=16,
                          read_regs=1),
    # Golden-model benchmark: 1024 compartments with dense fan-out from 1000 inputs.
    "bench": CoreGeometry(name="bench", n_compartments=1024, n_axons=1024, n_synapses=1 << 20,
                          n_routes=1024, n_profiles=8, n_delay_slots=8, n_outputs=1024,
                          max_fanout=1024, max_routes=4, read_regs=1),
}


@dataclass(frozen=True, kw_only=True)
class ChipGeometry:
    """A chip: ``n_cores`` neurocores of one geometry joined by a router (spec §10).

    - ``core``: every core's geometry; its ``n_cores`` equals the chip's, so the route words
      carry a ``core`` field exactly when the chip has more than one core.
    - ``mesh``: the cost model's (columns, rows); core ``c`` sits at ``(c mod columns,
      c // columns)`` and a flit costs ``|dx| + |dy|`` hops (dimension-order routing).  The
      RTL router is a crossbar for now (docs/rtl.md §8): the hops are the cost model only.

    A flit is one spike crossing to another core through one route word; routes to the
    spiking core's own axons stay inside the core.
    """

    name: str = "custom"
    core: CoreGeometry
    n_cores: int
    mesh: tuple[int, int]

    def __post_init__(self):
        if not isinstance(self.n_cores, int) or not 1 <= self.n_cores <= MAX_CORES:
            raise ConfigError(f"ChipGeometry.n_cores={self.n_cores!r} must be an integer in "
                              f"1..{MAX_CORES}")
        if self.core.n_cores != self.n_cores:
            raise ConfigError(f"chip {self.name!r} has {self.n_cores} cores but its core "
                              f"geometry {self.core.name!r} has n_cores={self.core.n_cores}")
        cols, rows = self.mesh
        if cols < 1 or rows < 1 or cols * rows < self.n_cores:
            raise ConfigError(f"chip {self.name!r}: mesh {self.mesh} has fewer than "
                              f"{self.n_cores} places")

    def position(self, core: int) -> tuple[int, int]:
        """(column, row) of ``core`` on the mesh."""
        return core % self.mesh[0], core // self.mesh[0]

    def hops(self, a: int, b: int) -> int:
        """Router hops of a flit from core ``a`` to core ``b``."""
        (xa, ya), (xb, yb) = self.position(a), self.position(b)
        return abs(xa - xb) + abs(ya - yb)

    @classmethod
    def preset(cls, name: str) -> "ChipGeometry":
        """Return the named chip preset (see :data:`CHIP_PRESETS`), or its periodic-reset
        variant ``"<preset>-reset"``: every core with ``reset_bits = RESET_VARIANT_BITS``
        (spec §11), as :meth:`CoreGeometry.preset`."""
        base = name[:-len(RESET_SUFFIX)] if name.endswith(RESET_SUFFIX) else None
        if base in CHIP_PRESETS:
            chip = CHIP_PRESETS[base]
            return dataclasses.replace(chip, name=name, core=chip.core.replace(
                name=chip.core.name + RESET_SUFFIX, reset_bits=RESET_VARIANT_BITS))
        try:
            return CHIP_PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown chip preset {name!r}; known: {sorted(CHIP_PRESETS)} "
                           f"and each with {RESET_SUFFIX!r}") from None


#: ULX3S chip budget (the "ulx3s" chip preset's comment): the ECP5-85F's DP16KD EBR blocks,
#: the blocks the chip leaves for the UART bridge, spike buffers and router FIFOs at least,
#: and the estimated blocks of one chip core's and of one board core's memories
#: (tests/test_chip_convert.py, ``ebr_estimate``, checks the estimates).
ULX3S_EBR, ULX3S_EBR_SPARE = 208, 12
ULX3S_CHIP_CORE_EBR, ULX3S_BOARD_CORE_EBR = 30, 120

CHIP_PRESETS: dict[str, ChipGeometry] = {
    # Unit tests: four tiny cores on a 2 x 2 mesh.
    "chip-test": ChipGeometry(name="chip-test", n_cores=4, mesh=(2, 2),
                              core=PRESETS["tiny"].replace(name="chip-test-core", n_cores=4)),
    # ULX3S (ECP5-85F: ULX3S_EBR x 18 kbit DP16KD EBR, 156 MULT18X18D, 83640 LUT4).  One
    # board core (the "ulx3s" preset) keeps 8 update and 4 synapse lanes, each synapse lane
    # with its own accumulators: its memories take an estimated ULX3S_BOARD_CORE_EBR
    # (tests/test_chip_convert.py, ebr_estimate, computes the estimate: per memory the best
    # DP16KD shape, per bank), so two do not fit.  A chip core keeps 2 delay slots (the
    # Quartz compiler uses delays 0 and 1) and is sized for the paper's ConvNet, whose steps
    # are as long as the slowest core's UPDATE pass plus its synapse work (chip cycle model,
    # spec/chip_cycle_model.py): 2 update lanes (k_u = 2: the pass over ~900 compartments
    # takes ~450 cycles in every one of the 96 steps; Quartz neurons keep u != 0 after
    # spiking, so the idle skip rarely applies), 1 synapse lane, 1024 compartments, 3072
    # axons (a Quartz neuron's own axon carries its self-inhibition, so a core needs its
    # compartments' axons plus its inputs': a core with a conv1 channel holds 784 input and
    # about 720 own axons, and with 3072 it also takes a copy of pool1's 864 axons and so
    # some of conv2's channels, which spreads conv2's synapse work over every core), 6144
    # synapse words: an estimated ULX3S_CHIP_CORE_EBR per core, so 6 cores fit the ULX3S_EBR
    # blocks and leave at least ULX3S_EBR_SPARE for the UART bridge, the spike buffers and
    # the router FIFOs (the single board core measures about 9 EBR above its memories'
    # estimate); 7 would not.  Measured alternatives (chip cycle model, ConvNet test image 0):
    # 7 cores with k_u = k_s = 1 and 2048 axons (28 EBR each; conv2 then sits on one core)
    # took 226k cycles per image; 7 with k_u = 1 and 3072 axons 121k; these 6 cores 85k.
    # k_s = 2 or k_u = 4 on top (35 and 40 EBR each) would not fit 6 cores.
    # Logic and multipliers are not the bound: one board core uses 6 % of the LUT4 and 4 of
    # the 156 multipliers (docs/boards.md).
    # Estimates, not a place-and-route result: there is no place-and-route of the chip yet.
    "ulx3s": ChipGeometry(name="ulx3s", n_cores=6, mesh=(3, 2), core=CoreGeometry(
        name="ulx3s-chip-core", n_compartments=1024, n_axons=3072, n_synapses=6144,
        n_routes=2048, n_profiles=16, n_delay_slots=2, n_outputs=256, max_fanout=1024,
        max_routes=16, k_u=2, k_s=1, n_conv=16, n_cores=6, read_regs=1)),
    # iCEBreaker (iCE40UP5K): one core already uses 83 % of the 5280 logic cells and 28 of the
    # 30 EBR (docs/boards.md), so the chip is that one core: a network it cannot hold gets a
    # fit report naming the layer that overflows.
    "icebreaker": ChipGeometry(name="icebreaker", n_cores=1, mesh=(1, 1),
                               core=PRESETS["icebreaker"]),
}
