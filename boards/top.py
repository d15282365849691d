"""What the board tops share: clock and UART parameters, the system, the memory override.

A board (``boards/icebreaker.py``, ``boards/ulx3s.py``) is a :class:`BoardBase` subclass that
names its amaranth-boards platform, device, geometry (:mod:`neurocore.boards.presets`),
default core clock and synthesis options, and builds a top: clock/reset (PLL), the
:class:`~neurocore.boards.uart_bridge.NeurocoreSystem` on the board's USB-UART pins, and two
LEDs (error, busy).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib.memory import Memory

from ..spec.geometry import ConfigError, CoreGeometry
from ..spec.words import memories
from .protocol import DEFAULT_MAX_PAYLOAD
from .uart_bridge import MIN_DIVISOR, NeurocoreSystem

__all__ = ["BoardBase", "uart_divisor", "MemoryOverride"]


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit; the baud error must stay below 2 %."""
    div = round(clock_hz / baud)
    if div < MIN_DIVISOR:
        raise ValueError(f"{baud} baud needs at least {MIN_DIVISOR} cycles per bit; the clock "
                         f"{clock_hz / 1e6:.3f} MHz gives {clock_hz / baud:.2f}")
    err = abs(clock_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"{baud} baud from {clock_hz / 1e6:.3f} MHz is off by {err:.1%}")
    return div


class MemoryOverride:
    """``platform.get_memory`` hook: memories matching ``select`` get ``factory(memory)``.

    ``select(memory) -> str | None`` names the memory (e.g. ``"synapses"``) or declines; every
    other memory gets Amaranth's default implementation (inferred block RAM).
    """

    def __init__(self, select, factory):
        self.select = select
        self.factory = factory
        self.mapped: list[str] = []

    def __call__(self, memory: Memory):
        name = self.select(memory)
        if name is not None:
            self.mapped.append(name)
            return self.factory(memory)
        return Memory.elaborate(memory, None)


def core_memory_selector(geometry: CoreGeometry, names):
    """Select the core's memories called ``names`` by their word layout and depth."""
    mems = memories(geometry)
    wanted = {name: (mems[name].layout, mems[name].depth) for name in names}

    def select(memory: Memory):
        for name, (layout, depth) in wanted.items():
            if memory.depth == depth and memory.shape == layout:
                return name
        return None

    return select


class BoardBase:
    """One board: subclasses set the class attributes and :meth:`platform`/:meth:`top`."""

    board = ""                   # key in presets.BOARD_GEOMETRIES
    name = "neurocore"           # file name stem in the build directory
    device = ""
    bitstream_suffix = "bin"
    default_clock_hz = 12e6
    default_baud = 115200
    timeout_ms = 20.0            # protocol inter-byte timeout
    event_depth = 256
    rx_depth = 2048              # protocol v2: RX ring bytes (two 784-pixel IMAGE frames)
    enc_inputs = 1024            # on-chip encoder: pixels per image ...
    enc_steps = 256              # ... steps per image
    image_commands = True        # build the image runner + encoder (v2 ENCODER, IMAGE)
    step_bits = 32               # the core's step counter (INFO reports it)
    counter_bits = 32            # the core's hardware counters (Neurocore(counter_bits=))
    synth_opts = ""
    nextpnr_opts = "--timing-allow-fail"
    seed = None                  # nextpnr placement seed (None: nextpnr's default)
    multipliers = 0              # hard multipliers of the device ...
    multiplier_bits = 18         # ... and their operand width

    def __init__(self, clock_hz: float | None = None, baud: int | None = None,
                 geometry: CoreGeometry | None = None):
        from .presets import board_geometry

        self.geometry = geometry or board_geometry(self.board)
        self.check_multipliers(self.geometry)
        self.requested_clock_hz = float(clock_hz or self.default_clock_hz)
        self.baud = int(baud or self.default_baud)
        self.override: MemoryOverride | None = None

    @classmethod
    def lane_multipliers(cls, g: CoreGeometry) -> int:
        """Hard multipliers one update lane needs: two decay products of a ``state_bits``
        magnitude by a ``decay_shift + 1``-bit factor, tiled onto the device's multipliers."""
        tiles = -(-g.state_bits // cls.multiplier_bits) * -(-(g.decay_shift + 1)
                                                            // cls.multiplier_bits)
        return 2 * tiles

    @classmethod
    def check_multipliers(cls, g: CoreGeometry) -> None:
        """Raise ConfigError when ``g``'s update lanes need more multipliers than the device has."""
        need = g.k_u * cls.lane_multipliers(g)
        if cls.multipliers and need > cls.multipliers:
            raise ConfigError(
                f"k_u={g.k_u} update lanes need {need} hard multipliers "
                f"({cls.lane_multipliers(g)} per lane), but the {cls.board} device "
                f"({cls.device}) has {cls.multipliers}: use k_u <= "
                f"{cls.multipliers // cls.lane_multipliers(g)}")

    # -- provided by subclasses
    def platform(self):
        raise NotImplementedError

    def top(self):
        raise NotImplementedError

    def pll_info(self) -> dict | None:
        return None

    @property
    def clock_hz(self) -> float:
        """The achieved core clock (the PLL's output)."""
        return self.requested_clock_hz

    # -- shared
    def system(self) -> NeurocoreSystem:
        return NeurocoreSystem(
            self.geometry, divisor=uart_divisor(self.clock_hz, self.baud),
            timeout=int(self.timeout_ms * 1e-3 * self.clock_hz),
            max_payload=DEFAULT_MAX_PAYLOAD, event_depth=self.event_depth,
            step_bits=self.step_bits, clock_hz=int(round(self.clock_hz)), baud=self.baud, rx_depth=self.rx_depth,
            enc_inputs=min(self.enc_inputs, self.geometry.n_axons), enc_steps=self.enc_steps,
            image_commands=self.image_commands,
            core_kwargs={"counter_bits": self.counter_bits})

    def plan(self, seed: int | None = None):
        """Amaranth's build plan: the files the toolchain gets (netlist, scripts, constraints)."""
        seed = self.seed if seed is None else seed       # one --seed: the caller's or ours
        opts = self.nextpnr_opts + (f" --seed {seed}" if seed is not None else "")
        return self.platform().prepare(self.top(), name=self.name,
                                       synth_opts=self.synth_opts, nextpnr_opts=opts)

    def build(self, build_dir: Path, seed: int | None = None, plan=None):
        """Run the toolchain on ``plan`` (default: :meth:`plan`) in ``build_dir``."""
        return (plan or self.plan(seed)).execute_local(str(build_dir))

    def memory_map(self) -> dict:
        return {"override": list(self.override.mapped) if self.override else []}


def shape_width(shape) -> int:
    return Shape.cast(shape).width
