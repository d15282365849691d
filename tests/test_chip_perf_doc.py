"""bench/chip_perf.py's generated section (docs/boards.md, docs/performance.md): every figure
comes from the result, the clock is stated as a target, the target verdict follows the
latency, and ``make boards-report`` keeps the section."""

from __future__ import annotations

from neurocore.bench import chip_perf


def result(cycles: float) -> dict:
    return {"model": "mnist_convnet_digits", "chip": "ulx3s", "t_max": 16, "steps": 96,
            "images": 20, "model_checked_images": 20, "cores": 2,
            "compartments_per_core": [1000, 900], "cycles_mean": cycles,
            "cycles_min": int(cycles) - 5, "cycles_max": int(cycles) + 5, "flits_mean": 1500.0,
            "flit_waits_mean": 9.0, "sops_per_core": [100.0, 300.0],
            "update_cycles_per_core": [cycles / 4, cycles / 2], "host_cycles_per_core": [1, 1],
            "clock_mhz": 100.0, "ms_per_image": cycles / 1e5, "images_per_s": 1e8 / cycles,
            "accuracy": 95.0, "opt": "fast", "k_u": 2, "k_s": 1}


def test_section_states_the_figures_the_clock_and_the_verdict():
    slow = chip_perf.markdown(result(225_856))
    assert "225,856 (225,851–225,861)" in slow and "2.26 ms" in slow and "443" in slow
    assert "100 MHz target clock (timing not yet closed" in slow
    assert "4.91 ms/image, ~204 images/s" in slow
    assert "missed by 4.5× (2.26 ms)" in slow
    assert "1: 300 SOPs (75 %)" in slow and "Core 1, the busiest, does 75 %" in slow
    # the lanes come from the result (the chip's geometry), not from the text
    assert "issues 2 compartments per cycle" in slow and "one synapse per cycle" in slow
    assert "so the others wait for it" in slow
    even = chip_perf.markdown(dict(result(40_000), sops_per_core=[200.0, 210.0], k_s=2))
    assert "2 synapses per cycle" in even and "wait for it" not in even
    fast = chip_perf.markdown(result(40_000))
    assert "| target ≤ 0.5 ms, ≥ 2000 images/s | met |" in fast
    assert "pipelined" not in fast   # a result without the pipelined stream has no such rows


def test_pipelined_rows_state_the_model_and_the_verdict():
    piped = {"geometry": "ulx3s-reset", "stream_period": 64, "stream_images": 8,
             "cycles_per_image": 73_500.0, "period_cycles_min": 73_000,
             "period_cycles_max": 74_000, "images_per_s": 1e8 / 73_500, "identical": True}
    text = chip_perf.markdown(dict(result(85_000), pipelined=piped))
    assert "pipelined on `ulx3s-reset` (a new image every 64 steps; RTL `cycles`" in text
    assert "a stream of 8 images" in text and "73,500 cycles per image (73,000–74,000)" in text
    assert "1,361 images/s" in text and "missed by 3.7× (1,361 images/s)" in text
    fast = chip_perf.markdown(dict(result(85_000), pipelined=dict(
        piped, cycles_per_image=19_000.0, images_per_s=1e8 / 19_000)))
    assert "| target ≥ 5,000 images/s pipelined | met |" in fast


def test_boards_report_keeps_the_chip_section(tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, str(chip_perf.ROOT / "tools"))
    import boards_report
    doc = tmp_path / "boards.md"
    monkeypatch.setattr(boards_report, "DOC", doc)
    monkeypatch.setattr(chip_perf, "RESULT", tmp_path / "absent.json")
    old = "x\n<!-- begin:chip_perf -->\nOLD FIGURES\n<!-- end:chip_perf -->\n"
    doc.write_text("regenerated board tables\n")
    boards_report.keep_chip_section(old)
    text = doc.read_text()
    assert text.startswith("regenerated board tables") and "OLD FIGURES" in text
