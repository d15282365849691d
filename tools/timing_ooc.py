"""Time one neurocore alone on the ECP5-85F: Yosys ``synth_ecp5`` and nextpnr-ecp5
``--out-of-context`` (no board, no bridge, no pins), and print nextpnr's post-route Fmax and
critical path.

A developer's loop for timing work (docs/rtl.md, timing rules): a reduced geometry keeps the
lanes and word widths of a preset with shallower memories and routes in 10–30 minutes where
the whole ULX3S build takes about an hour.  Its figures are the core's alone, not a board's:
``make boards-report`` gives those.

    python tools/timing_ooc.py ulx3s --build-dir build/ooc n_compartments=512 n_synapses=8192
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil

from neurocore.boards.build import parse_nextpnr_log, tool_env
from neurocore.rtl.core import Neurocore
from neurocore.spec.geometry import CoreGeometry

#: The ULX3S's device (boards/ulx3s.py): LFE5U-85F, CABGA381, speed grade 6.
DEVICE_ARGS = ("--85k", "--package", "CABGA381", "--speed", "6")


def critical_path(log: str) -> list[str]:
    """The source and sink cells of every step of nextpnr's last critical-path report."""
    reports = log.split("Critical path report for clock")
    if len(reports) < 2:
        return []
    return [line.split("Source ")[-1] for line in reports[-1].splitlines()
            if "Source " in line]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", help="core geometry preset (spec/geometry.py)")
    ap.add_argument("fields", nargs="*", help="geometry overrides, name=value")
    ap.add_argument("--build-dir", default="build/ooc")
    ap.add_argument("--freq", type=float, default=100.0, help="constraint in MHz")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        overrides = {k: int(v) for k, v in (f.split("=", 1) for f in a.fields)}
    except ValueError:
        ap.error(f"geometry overrides must be name=integer, not {a.fields!r}")
    g = CoreGeometry.preset(a.preset).replace(**overrides)
    out = Path(a.build_dir)
    out.mkdir(parents=True, exist_ok=True)
    tool_env()
    env = os.environ
    t0 = time.monotonic()
    (out / "core.il").write_text(rtlil.convert(Neurocore(g), name="core"))
    (out / "core.ys").write_text("read_rtlil core.il\nsynth_ecp5 -abc9 -top core -json core.json\n"
                                 "stat\n")
    subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", "core.ys"], cwd=out, env=env,
                   check=True)
    subprocess.run([env["NEXTPNR_ECP5"], *DEVICE_ARGS, "--out-of-context", "--json", "core.json",
                    "--freq", str(a.freq), "--seed", str(a.seed), "--timing-allow-fail",
                    "-l", "pnr.log", "-q"], cwd=out, env=env, check=True)
    log = (out / "pnr.log").read_text()
    (clock,) = parse_nextpnr_log(log)["clocks"].values()
    print(f"{g.name} {overrides or ''}: post-route Fmax {clock['fmax_mhz']:.2f} MHz at a "
          f"{a.freq:g} MHz constraint ({time.monotonic() - t0:.0f} s; {out / 'pnr.log'})")
    for step in critical_path(log):
        print("   ", step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
