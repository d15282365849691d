"""UART bridge (boards/uart_bridge.py) in Amaranth's simulator, driven at bit level.

Every test runs :class:`~neurocore.boards.uart_bridge.NeurocoreSystem` (bridge + Neurocore of
a small geometry) with the host side in a thread (boards/sim_uart.py): the protocol client of
sw/host.py for well-formed traffic, raw bytes and line levels for malformed traffic.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from neurocore.boards.protocol import (SYNC_REQUEST, BridgeFlags, ClearMask, Cmd, FrameParser,
                                       Status, crc16, crc16_update, encode_frame, encode_info,
                                       word_bytes)
from neurocore.boards.sim_uart import send_line, simulate_host, uart_bits
from neurocore.boards.uart_bridge import NeurocoreSystem, UARTRx, UARTTx, crc16_byte
from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.golden.random_networks import random_network
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import memories
from neurocore.sw.host import BoardLink, NeurocoreHost, ProtocolError

G = CoreGeometry(name="bridge-test", n_compartments=8, n_axons=16, n_synapses=64, n_routes=16,
                 n_profiles=2, n_delay_slots=2, n_outputs=8, max_fanout=16, max_routes=4)
DIV = 4
TIMEOUT = 30 * DIV           # cycles: inter-byte timeout and the quiet time after a bad frame
RING = 256                   # RX ring of the overrun test (bytes)
INFO = encode_info(G, max_payload=128, step_bits=32, event_depth=256, input_depth=16)


def system(**kw):
    return NeurocoreSystem(G, divisor=DIV, timeout=TIMEOUT, **kw)


def run(host_fn, **kw):
    return simulate_host(system(**kw), host_fn, divisor=DIV)


def exchange(t, data: bytes, *, first: int = 4 * TIMEOUT) -> list:
    """Send raw bytes; return every response frame that arrives before the line goes quiet.

    The first byte may take ``first`` cycles; after each complete frame the line is watched
    for another ``3 * TIMEOUT`` cycles (a second response would be a protocol error).
    """
    t.reset_input_buffer()
    t.write(data)
    parser = FrameParser()
    frames = []
    t.read_timeout_cycles = first
    try:
        while True:
            chunk = t.read(1)
            if not chunk:
                return frames
            frames += parser.feed(chunk)
            t.read_timeout_cycles = 3 * TIMEOUT if frames and not parser.pending() else 12 * DIV
    finally:
        t.read_timeout_cycles = None


# ---- CRC and UART -------------------------------------------------------------------------------
def test_crc16_check_value_and_rtl_matches(rng):
    assert crc16(b"123456789") == 0x29B1        # CRC-16/CCITT-FALSE check value
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_byte(crc, byte))
    sim = Simulator(m)
    cases = [(int(c), int(b)) for c, b in zip(rng.integers(0, 1 << 16, 300),
                                              rng.integers(0, 256, 300))]
    cases += [(0xFFFF, b) for b in range(256)]

    async def tb(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16_update(c, b), (hex(c), b)

    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_uart_loopback(divisor, rng):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [int(b) for b in rng.integers(0, 256, 24)] + [0x00, 0xFF, 0x55, 0xAA]
    sim = Simulator(m)
    sim.add_clock(1e-8)
    got = []

    async def sender(ctx):
        for b in data:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
            # the transmitter takes the byte at this edge and is busy for 10 bits
            await ctx.tick()
        await ctx.tick().repeat(12 * divisor)

    async def receiver(ctx):
        while True:
            await ctx.tick()
            assert not ctx.get(rx.framing)
            if ctx.get(rx.valid):
                got.append(ctx.get(rx.data))

    sim.add_testbench(receiver, background=True)
    sim.add_testbench(sender)
    sim.run()
    assert got == data


# ---- protocol -----------------------------------------------------------------------------------
def test_info_write_read_fill_every_memory(rng):
    mems = memories(G)
    words = {name: [int(w) for w in rng.integers(0, 1 << min(63, m.layout.size), m.depth,
                                                 dtype=np.uint64)]
             for name, m in mems.items()}

    def host(t):
        link = BoardLink(t, timeout=None)
        info = link.info()
        assert info.same_geometry(G)
        assert (info.max_payload, info.step_bits, info.input_depth) == (128, 32, 16)
        for name, m in mems.items():
            link.write(G, name, 0, words[name])            # several frames for deep memories
            assert link.read(G, name, 0, m.depth) == words[name], name
        link.fill(G, "synapses", 5, 50, 0x1234)
        back = link.read(G, "synapses", 0, mems["synapses"].depth)
        assert back[:5] == words["synapses"][:5]
        assert back[5:55] == [0x1234] * 50
        assert back[55:] == words["synapses"][55:]
        link.fill(G, "routes", 0, 0, 0)                  # count 0: nothing
        assert link.read(G, "routes", 0, 1) == words["routes"][:1]
        st = link.status()
        assert st.bridge_flags == 0 and st.core_errors == 0
        assert link.resends == 0
        return link.frames_sent

    assert run(host) > 10


def test_malformed_frames_are_rejected_and_the_receiver_resyncs():
    def host(t):
        link = BoardLink(t, timeout=None, retries=0)
        info = encode_frame(Cmd.INFO)
        results = {}
        # bad CRC: one BAD_CRC response once the line is quiet, nothing executed
        bad = bytearray(encode_frame(Cmd.RUN, b"\x05\x00"))
        bad[-1] ^= 0x40
        results["crc"] = exchange(t, bytes(bad))
        # unknown command (well-formed frame)
        results["unknown"] = exchange(t, encode_frame(0x77, b"\x01\x02"))
        # LEN above the limit; the rest of the frame (with sync bytes in it) is skipped
        over = bytes([SYNC_REQUEST, Cmd.WRITE, 200]) + bytes([SYNC_REQUEST, 0x01, 0x00]) * 20
        results["over"] = exchange(t, over)
        # a frame that stops arriving: TIMEOUT
        results["partial"] = exchange(t, encode_frame(Cmd.WRITE, b"\x01" * 9)[:6])
        results["sync_only"] = exchange(t, bytes([SYNC_REQUEST]))
        # garbage before a good frame is skipped
        results["garbage"] = exchange(t, b"\x00\x13\xff\x5a" + info)
        # wrong lengths and arguments
        results["run_len"] = exchange(t, encode_frame(Cmd.RUN, b"\x01"))
        results["info_len"] = exchange(t, encode_frame(Cmd.INFO, b"\x00"))
        results["write_len"] = exchange(t, encode_frame(Cmd.WRITE, b"\x01\x00\x00\x00\x02"
                                                                   + b"\x00" * 5))
        results["write_zero"] = exchange(t, encode_frame(Cmd.WRITE, b"\x01\x00\x00\x00\x00"))
        results["read_long"] = exchange(t, encode_frame(Cmd.READ, b"\x01\x00\x00\x00\xc8"))
        results["events_len"] = exchange(t, encode_frame(Cmd.EVENTS, b"\x01\x02"))
        results["spikes_odd"] = exchange(t, encode_frame(Cmd.SPIKES, b"\x01\x00\x02"))
        results["memory"] = exchange(t, encode_frame(Cmd.READ, b"\x09\x00\x00\x00\x01"))
        results["range"] = exchange(t, encode_frame(Cmd.READ, b"\x01\x3f\x00\x00\x02"))
        results["fill_range"] = exchange(t, encode_frame(
            Cmd.FILL, b"\x00\x00\x00\x00\x11\x00\x00" + b"\x00" * word_bytes(G)["synapse_map"]))
        results["axon"] = exchange(t, encode_frame(Cmd.SPIKES, b"\x01\x00\x10\x00"))
        st = link.status()
        link.clear(ClearMask.ERRORS)
        st2 = link.status()
        # nothing above ran a step or queued a spike
        return results, st, st2, link.run(1)

    results, st, st2, after = run(host)
    expect = {"crc": Status.BAD_CRC, "unknown": Status.UNKNOWN_CMD, "over": Status.BAD_LENGTH,
              "partial": Status.TIMEOUT, "sync_only": Status.TIMEOUT, "garbage": Status.OK,
              "run_len": Status.BAD_LENGTH, "info_len": Status.BAD_LENGTH,
              "write_len": Status.BAD_LENGTH, "write_zero": Status.BAD_LENGTH,
              "read_long": Status.BAD_LENGTH, "events_len": Status.BAD_LENGTH,
              "spikes_odd": Status.BAD_LENGTH, "memory": Status.BAD_MEMORY,
              "range": Status.RANGE, "fill_range": Status.RANGE, "axon": Status.RANGE}
    for key, status in expect.items():
        frames = results[key]
        assert len(frames) == 1, (key, frames)       # exactly one response per frame
        assert frames[0].status == status, (key, frames[0])
        assert len(frames[0].payload) == (1 + len(INFO) if key == "garbage" else 1), key
    assert results["unknown"][0].cmd == 0x77 and results["crc"][0].cmd == Cmd.RUN
    assert st.bridge_flags == BridgeFlags.REJECTED and st.step == 0
    assert st2.bridge_flags == 0
    assert after == (1, 0)                          # the bad RUN frame never ran a step


def test_framing_error_and_overrun_are_flagged_and_recovered():
    def host(t):
        link = BoardLink(t, timeout=None)
        # a character without stop bit, then a long low (break)
        send_line(t, [(lv, DIV) for lv in uart_bits(0xA5, stop=0)] + [(0, 40 * DIV)])
        flags_framing = link.status().bridge_flags
        link.clear(ClearMask.ERRORS)
        # a frame sent while a long RUN executes waits in the RX ring: answered after the RUN
        t.reset_input_buffer()
        t.write(encode_frame(Cmd.RUN, (400).to_bytes(2, "little")) + encode_frame(Cmd.INFO))
        frames = exchange(t, b"", first=40_000)
        flags_kept = link.status().bridge_flags
        # more bytes than the ring holds while a RUN executes: the excess is dropped, flagged
        t.reset_input_buffer()
        t.write(encode_frame(Cmd.RUN, (2000).to_bytes(2, "little")) + bytes(RING + 40))
        frames_over = exchange(t, b"", first=200_000)
        flags_overrun = link.status().bridge_flags
        ok = link.info().same_geometry(G)
        assert link.resends == 0
        return flags_framing, frames, flags_kept, frames_over, flags_overrun, ok

    flags_framing, frames, flags_kept, frames_over, flags_overrun, ok = run(host,
                                                                            rx_depth=RING)
    assert flags_framing & BridgeFlags.FRAMING
    assert [f.cmd for f in frames] == [Cmd.RUN, Cmd.INFO]
    assert [f.status for f in frames] == [Status.OK, Status.OK]
    assert int.from_bytes(frames[0].data[:4], "little") == 400
    assert not flags_kept & BridgeFlags.RX_OVERRUN
    assert [f.cmd for f in frames_over] == [Cmd.RUN] and frames_over[0].status == Status.OK
    assert flags_overrun & BridgeFlags.RX_OVERRUN
    assert ok


def _network_with_outputs(seed, steps):
    for s in range(seed, seed + 50):
        net = random_network(s, G, steps=steps)
        out = GoldenCore(net.config).run(net.inputs).outputs[0]
        if out.sum() >= 3:
            return net, out
    raise AssertionError("no random network with output events")


def test_random_networks_run_like_golden(seed):
    nets = [_network_with_outputs(seed + 100 * i, 12) for i in range(3)]

    def host(t):
        h = NeurocoreHost(t, timeout=None)
        runs = []
        for i, (net, _) in enumerate(nets):
            h.load(net.config, verify=(i == 0))
            runs.append(h.run_raster(net.inputs[0]))
        assert h.link.resends == 0
        return runs

    for (net, gold), r in zip(nets, run(host)):
        assert np.array_equal(r.outputs, gold), net.describe()
        assert sorted(r.events) == sorted((int(o), int(t)) for t, o in zip(*np.nonzero(gold))
                                          for _ in range(gold[t, o]))
        assert r.status.core_errors == 0 and r.status.bridge_flags == 0


def _fan_out_network():
    """Axon 0 fires all 8 compartments at once; each sends 1 event (8 events in one step)."""
    b = NetworkBuilder(G)
    p = b.add_profile(vth=1, du=4095, du_offset=1)
    cx = b.add_compartments(8, profile=p)
    b.connect(0, cx, 255, weight_exp=7)
    b.route_to_output(cx, np.arange(8) % G.n_outputs)
    return b.build()


def test_input_full_does_not_hang_and_event_overflow_is_reported():
    config = _fan_out_network()
    x = np.zeros((4, G.n_axons), dtype=bool)
    x[0, 0] = x[2, 0] = True
    gold = GoldenCore(config).run(x[None]).outputs[0]
    assert gold.sum() == 16 and gold.max() == 1

    def host(t):
        link = BoardLink(t, timeout=None)
        rsp = link.request(Cmd.SPIKES, b"".join(a.to_bytes(2, "little") for a in range(16))
                           + b"\x00\x00" * 4, allow=(Status.INPUT_FULL,))
        first = (rsp.status, rsp.data)
        step, _ = link.run(1)                     # the step drains the buffer
        h = NeurocoreHost(t, timeout=None)
        h.load(config)
        try:
            h.run_raster(x)
            raised = None
        except ProtocolError as e:
            raised = str(e)
        st = h.link.status()
        h.link.clear()
        return first, step, raised, st, h.link.status()

    first, step, raised, st, st2 = run(host, event_depth=4)
    assert first == (Status.INPUT_FULL, bytes([16]))
    assert step == 1
    assert raised and "overflow" in raised         # a run that lost events is refused
    assert st.bridge_flags & BridgeFlags.EVENT_OVERFLOW
    assert (st2.bridge_flags, st2.step, st2.events_pending) == (0, 0, 0)


def test_clear_zeroes_state_and_step(seed):
    net, _ = _network_with_outputs(seed, 6)

    def host(t):
        h = NeurocoreHost(t, timeout=None)
        h.load(net.config)
        h.run_raster(net.inputs[0])
        before = h.link.read(G, "state", 0, G.n_compartments)
        h.link.clear(ClearMask.CORE)
        return before, h.link.read(G, "state", 0, G.n_compartments), h.link.status()

    before, after, st = run(host)
    assert any(before) and not any(after)
    assert st.step == 0


def test_conv_network_loads_through_the_bridge_and_runs_like_golden(seed):
    """A geometry with conv descriptors: the host loads the conv memory (FILL, WRITE, verify
    READ of select 9) and the core scatters the descriptor like golden."""
    g = G.replace(name="bridge-conv", n_conv=2)
    rng = np.random.default_rng(seed)
    b = NetworkBuilder(g)
    p = b.add_profile(vth=40, du=2048, dv=512)
    out = b.add_compartments(8, profile=p).reshape(2, 2, 2)
    b.add_conv(np.arange(9).reshape(1, 3, 3), out, rng.integers(1, 256, size=(2, 1, 2, 2)),
               weight_exp=2, delay=rng.integers(0, 2, size=(2, 1, 2, 2)))
    b.route_to_output(out.reshape(-1), np.arange(8))
    config = b.build()
    x = rng.random((12, g.n_axons)) < 0.3
    x[:, 9:] = False
    gold = GoldenCore(config).run(x[None]).outputs[0]
    assert gold.sum() >= 3

    def host(t):
        h = NeurocoreHost(t, timeout=None)
        h.load(config, verify=True)
        return h.run_raster(x)

    r = simulate_host(NeurocoreSystem(g, divisor=DIV, timeout=TIMEOUT), host, divisor=DIV)
    assert np.array_equal(r.outputs, gold)
    assert r.status.core_errors == 0 and r.status.bridge_flags == 0


def test_bridge_without_image_commands_refuses_encoder_and_image():
    """image_commands=False (the iCEBreaker bitstream): no image runner is built, ENCODER and
    IMAGE answer UNKNOWN_CMD (v1 frames, one response each), LINK reports encoder sizes 0,
    and the other commands still work."""
    def host(t):
        link = BoardLink(t, timeout=None)
        results = {cmd: exchange(t, encode_frame(cmd, b"\x00\x00\x00"))
                   for cmd in (Cmd.ENCODER, Cmd.IMAGE)}
        return results, link.link_info(), link.run(1)

    sys_ = system(image_commands=False)
    assert not sys_.bridge.image_commands
    results, info, after = simulate_host(sys_, host, divisor=DIV)
    for cmd, frames in results.items():
        assert len(frames) == 1 and frames[0].status == Status.UNKNOWN_CMD, (cmd, frames)
    assert (info.enc_inputs, info.enc_steps, info.enc_classes) == (0, 0, 0)
    assert after == (1, 0)
