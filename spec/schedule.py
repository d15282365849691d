"""The core's schedule, defined once: memory order of the configuration port, the register
file (``n_active`` and the hardware counters), the phases of a time step and the depths of
the pipelines.

The RTL (``rtl/``), the cycle model (:mod:`neurocore.spec.cycle_model`), the host drivers and
the board bridge import these names; none of them keeps a copy.  docs/rtl.md §2 describes the
schedule in words.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["MEMORY_ORDER", "MEMORY_INDEX", "REGISTERS", "COUNTERS", "REGISTER_BITS",
           "CONFIG_DATA_BITS", "Phase", "DATAPATH_LATENCY", "UPDATE_READ_STAGES",
           "SPIKE_QUEUE_STAGES", "FIXED_CYCLES", "SYNAPSE_STAGES", "CONV_SETUP", "issue_stages",
           "update_read_stages", "update_drain", "drain_cycles", "synapse_stages",
           "AXON_PIPE_DEPTH", "SKIP_WINDOW",
           "register_index", "write_cycle", "port_targets", "FLIT_IN_DEPTH", "ROUTER_FIFO_DEPTH"]

#: Memory select value of each memory on the configuration port, in order.  ``registers`` is
#: the register file below (not a memory of :func:`neurocore.spec.words.memories`); ``conv``
#: (the conv descriptors, spec §3.5) exists only on a geometry with ``n_conv > 0`` (a select
#: of a memory the core lacks is out of range).
MEMORY_ORDER = ("synapse_map", "synapses", "compartments", "profiles", "axon_map", "routes",
                "state", "accumulators", "registers", "conv")
MEMORY_INDEX = {name: i for i, name in enumerate(MEMORY_ORDER)}

#: Hardware counters (register file addresses 1 …), each ``REGISTER_BITS`` wide and wrapping.
#: They count from the last write of 0 to them (the host clears them); ``ctrl.clear`` leaves
#: them alone.
COUNTERS = (
    "steps",          # time steps run (DONE cycles)
    "cycles",         # cycles of all steps, start cycle to DONE cycle inclusive
    "update_cycles",  # cycles in UPDATE and its drain
    "host_cycles",    # cycles in the HOST phase (host spikes fed to the synapse walker)
    "spike_cycles",   # cycles in the SPIKE phase (route lists, then the pipelines drain)
    "sops",           # synaptic operations: accumulator read-modify-writes
    "updates",        # compartment updates issued
    "skipped",        # compartments below n_active not updated (idle, spec §2.5)
    "stalls",         # cycles with out.valid & ~out.ready
)
#: Register file: address 0 is ``n_active`` (compartments ``>= n_active`` are never
#: updated, spec §2.5); the counters follow.
REGISTERS = ("n_active",) + COUNTERS
#: Width of every register.
REGISTER_BITS = 32
#: Width of the configuration port's data bus (every memory word and register fits in it).
CONFIG_DATA_BITS = 64


def register_index(name: str) -> int:
    """Register-file address of ``name`` (:data:`REGISTERS`)."""
    return REGISTERS.index(name)


class Phase(Enum):
    """States of the core's step controller (docs/rtl.md §2)."""

    IDLE = 0      # waits for ctrl.start / ctrl.clear; the configuration port is open
    CLEAR = 1     # zeroes state and accumulators, one row of every bank per cycle
    UPDATE = 2    # issues one group of k_u compartments per cycle
    DRAIN = 3     # waits for the update pipeline's last write-back
    HOST = 4      # feeds the step's host spikes to the synapse walker
    SPIKE = 5     # feeds the route lists of this step's spikes, then drains the walker
    DONE = 6      # ctrl.done; the step counter and the delay slot advance


#: Register stages of the compartment datapath (``CompartmentUpdate``, its ``STAGES``: DSP
#: operands, DSP products, decays, u', v' before saturation).
DATAPATH_LATENCY = 5
#: Update pipeline before the datapath without read registers: U0 issues the addresses, U1
#: has the compartment words (and reads the profile), U2 has the profile and feeds the
#: datapath.
UPDATE_READ_STAGES = 2
#: Register stages between an update lane's spike and the spike queue's FIFOs
#: (rtl/spike_queue.py): the threshold compare does not reach the FIFO pointers (timing).
SPIKE_QUEUE_STAGES = 1
#: Start cycle + DONE cycle.
FIXED_CYCLES = 2
#: Update groups the idle-skip scanner examines per UPDATE cycle (an aligned window; at most
#: ``bank_depth``): a window with no group to update costs one cycle.
SKIP_WINDOW = 32
#: Synapse pipeline after the walker's issue without read registers: S1 has the synapse word
#: and reads the accumulator, S2 adds and writes back.
SYNAPSE_STAGES = 2
#: Cycles from an axon's lookup (its first cycle in the synapse walker's map register) to the
#: earliest hand-over of a conv axon (rtl/conv_walker.py): the descriptor read with the map
#: word into a register (P0), the window bounds (P1), the window and first kernel row (P2),
#: the products of the first kernel word and target (P3), their sums (P4).
CONV_SETUP = 5
#: Entries of the synapse walker's input FIFO (rtl/synapse_walker.py): axons from the host
#: queue, the route reader or the chip's flit queue enter it one cycle before the walker can
#: look them up.  Its ``ready`` is a register, so the walker's map lookup never lies on the
#: same combinational path as the route reader's list logic (timing); two entries keep one
#: axon per cycle flowing.
AXON_PIPE_DEPTH = 2
#: Chip cores (spec §10, docs/rtl.md §8): entries of a core's FIFO of remote flits (axons
#: sent by other cores), drained by its synapse walker in the SPIKE phase.
FLIT_IN_DEPTH = 4
#: Entries of the router's FIFO at each core's flit output (``rtl/router.py``).
ROUTER_FIFO_DEPTH = 4


def issue_stages(g) -> int:
    """Registers between the idle-skip scanner's choice of a group and its issue (U0) on a
    core of geometry ``g``: with ``read_regs`` the banks' addresses come from a register, not
    from the scanner's priority encoder."""
    return g.read_regs


def update_read_stages(g) -> int:
    """Update pipeline stages before the datapath: :data:`UPDATE_READ_STAGES`, and with
    ``read_regs`` one more (U1 registers the block-RAM words and accumulator entries, U2
    reads the profile at the registered word's index and sums the entries)."""
    return UPDATE_READ_STAGES + g.read_regs


def update_drain(g) -> int:
    """Cycles after the scanner's last choice until that group's state is written back."""
    return issue_stages(g) + update_read_stages(g) + DATAPATH_LATENCY


def drain_cycles(g) -> int:
    """Cycles of the DRAIN phase: the last group's issue and write-back, then its spike into
    the spike queue."""
    return update_drain(g) + SPIKE_QUEUE_STAGES


def synapse_stages(g) -> int:
    """Synapse pipeline stages after the walker's issue: :data:`SYNAPSE_STAGES`, and with
    ``read_regs`` a register (S0) for the walker's synapse word (block-RAM data) before S1 and
    one (S2r) for the accumulator banks' read data before S2."""
    return SYNAPSE_STAGES + 2 * g.read_regs


def write_cycle(cx: int, g) -> int:
    """Cycle of a step (start cycle = 0) in which compartment ``cx``'s state is written when
    no group is skipped."""
    return 1 + cx // g.k_u + update_drain(g)


def port_targets(g) -> dict[str, tuple[int, int]]:
    """``(depth, bits)`` of every configuration-port target of geometry ``g``, in
    :data:`MEMORY_INDEX` order (the memories of spec/words.py and the register file); a
    memory the geometry lacks (``conv`` with ``n_conv = 0``) is left out."""
    from .words import memories
    mems = memories(g)
    return {name: ((len(REGISTERS), REGISTER_BITS) if name == "registers"
                   else (mems[name].depth, mems[name].layout.size)) for name in MEMORY_ORDER
            if name == "registers" or name in mems}
