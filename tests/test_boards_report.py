"""tools/boards_report.py without building: the UART byte count it reports equals what the
host driver really sends and receives, and the page renders from build reports."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np

from neurocore.boards.protocol import (SYNC_REQUEST, SYNC_RESPONSE, Cmd, FrameParser, Status,
                                       encode_frame, encode_info)
from neurocore.spec.geometry import CoreGeometry
from neurocore.sw.host import NeurocoreHost

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("boards_report", ROOT / "tools" / "boards_report.py")
boards_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(boards_report)

G = CoreGeometry.preset("tiny")


class ProtocolBoard:
    """A protocol-level stand-in for the bridge: answers every command, emits scripted events
    (``events[step]`` output ids) and counts the bytes both ways."""

    def __init__(self, events: dict[int, list[int]]):
        self.events = events
        self.step = 0
        self.fifo: list[tuple[int, int]] = []
        self.parser = FrameParser(sync=SYNC_REQUEST)
        self.out = bytearray()
        self.sent = self.received = 0

    def reply(self, cmd, data=b""):
        self.out += encode_frame(cmd, bytes([Status.OK]) + data, sync=SYNC_RESPONSE)

    def write(self, data):
        self.received += len(data)
        for f in self.parser.feed(data):
            if f.cmd == Cmd.INFO:
                self.reply(f.cmd, encode_info(G, max_payload=128, step_bits=32,
                                              event_depth=256, input_depth=128))
            elif f.cmd == Cmd.CLEAR:
                self.step, self.fifo = 0, []
                self.reply(f.cmd)
            elif f.cmd == Cmd.SPIKES:
                self.reply(f.cmd, bytes([len(f.payload) // 2]))
            elif f.cmd == Cmd.STEP:
                self.fifo += [(o, self.step) for o in self.events.get(self.step, [])]
                self.step += 1
                self.reply(f.cmd, struct.pack("<IH", self.step, len(self.fifo)))
            elif f.cmd == Cmd.EVENTS:
                n = min(f.payload[0], 21, len(self.fifo))
                ev, self.fifo = self.fifo[:n], self.fifo[n:]
                self.reply(f.cmd, bytes([n]) + b"".join(struct.pack("<HI", *e) for e in ev))
            elif f.cmd == Cmd.STATUS:
                self.reply(f.cmd, struct.pack("<BBIH", 0, 0, self.step, len(self.fifo)))
            else:
                raise AssertionError(f"unexpected command {f.cmd}")

    def read(self, n=1):
        data, self.out = bytes(self.out[:n]), self.out[n:]
        self.sent += len(data)
        return data

    def reset_input_buffer(self):
        self.out.clear()


def test_link_bytes_equal_the_host_drivers_traffic(rng):
    steps = 30
    raster = np.zeros((steps, G.n_axons), dtype=bool)
    raster[rng.random((steps, G.n_axons)) < 0.03] = True
    raster[5, :100] = True                                 # more ids than one frame holds
    events = {int(t): [int(o) for o in rng.integers(0, G.n_outputs, rng.integers(0, 4))]
              for t in range(steps)}
    n_events = sum(len(v) for v in events.values())
    board = ProtocolBoard(events)
    host = NeurocoreHost(board, timeout=None)
    before = board.sent + board.received
    run = host.run_raster(raster)
    assert sorted(run.events) == sorted((o, t) for t, os in events.items() for o in os)
    assert board.sent + board.received - before == boards_report.link_bytes(
        raster.sum(axis=1), n_events)


def _report(board, device, util, clocks, pll):
    from neurocore.boards.presets import board_geometry
    import dataclasses

    return {"board": board, "device": device, "geometry": dataclasses.asdict(board_geometry(board)),
            "clock_hz": 13.5e6, "baud": 115200, "pll": pll, "synth_opts": "-dsp",
            "clock_name": "clk", "fmax_mhz": 14.5, "target_mhz": 13.5, "timing_met": True,
            "clocks": clocks, "utilisation": util, "yosys_cells": {"SB_LUT4": 10, "SB_DFF": 3},
            "memories": {"override": ["synapses"]}, "build_seconds": 50.0,
            "bitstream": "build/x/neurocore.bin", "bitstream_bytes": 104090}


def test_render_from_reports():
    r = _report("icebreaker", "iCE40UP5K-SG48",
                {"ICESTORM_LC": {"used": 3918, "total": 5280},
                 "ICESTORM_RAM": {"used": 24, "total": 30}},
                {"clk": {"fmax_mhz": 14.5, "target_mhz": 13.5, "pass": True}},
                {"primitive": "SB_PLL40_PAD", "f_in_hz": 12e6, "f_out": 13.5e6})
    tp = {"network": "digits_mlp", "t_max": 16, "steps": 62, "samples": 10, "accuracy": 0.9,
          "compartments_used": 76, "synapses_used": 4115, "axons_used": 136, "routes_used": 86,
          "cycles_mean": 9000.0, "cycles_min": 8900, "cycles_max": 9100,
          "core_inferences_per_s": 1500.0, "link_bytes_mean": 1200.0,
          "fitted_compartments": 128, "fitted_cycles_mean": 9000.0,
          "link_inferences_per_s": 9.5}
    text = boards_report.render({"icebreaker": r}, {"icebreaker": tp}, {"yosys": "0"}, 1.0)
    assert "Generated by tools/boards_report.py" in text
    assert "| logic cells (LUT4 + FF) | 3 918 / 5 280 (74 %) |" in text
    assert "| post-route Fmax | **14.50 MHz** |" in text and "**1 500**" in text
    for word in ("combinational DSP", "estimate", "assumed"):   # nextpnr times every path
        assert word not in text.lower()
    failed = boards_report.render({"icebreaker": {**r, "timing_met": False,
                                                  "untimed": ["mac_SB_MAC16_O"]}},
                                  {"icebreaker": tp}, {"yosys": "0"}, 1.0)
    assert "**FAILED** (untimed paths through mac_SB_MAC16_O)" in failed
    assert "`synapses` in SPRAM" in text
