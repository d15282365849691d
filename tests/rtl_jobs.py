"""Job lists of the cocotb regression (tests/test_rtl_cocotb.py), shared with the mutant runs
(tests/test_rtl_mutants.py) so that a mutant meets exactly the networks the regression uses."""

from __future__ import annotations

import os

N_NETWORKS = 120          # seeded random networks on the tiny preset
N_FORWARDING = 24         # forwarding-stress networks (golden.random_networks.forwarding_network)
STEPS = 24
N_BACKPRESSURE = 6
N_MUTATION_SEEDS = 3      # x 3 kinds (weight, delay, threshold)
N_CONV = 4                # conv networks (random_conv_network; the C++ harness runs 56 more,
                          # tests/test_rtl_conv.py)
MUTATION_KINDS = ("weight", "delay", "threshold")
#: Lane configurations (k_u, k_s) of the regression: (1, 1) runs the whole plan, every other
#: one ``N_LANE_NETWORKS`` random, ``N_LANE_FORWARDING`` forwarding-stress and one
#: backpressure network (its own Verilator build each).
ALL_LANE_CONFIGS = [(ku, ks) for ku in (1, 2, 4) for ks in (1, 2, 4)]
#: ``make test`` runs a covering subset: every k_u and every k_s value, equal and unequal;
#: (2, 4) and (4, 2) run in the Amaranth-simulator tests (tests/test_rtl_core.py) and the conv
#: regression (tests/test_rtl_conv.py); (1, 2) and (2, 1) only in ``make sim``
#: (``NEUROCORE_LANE_CONFIGS=all``: all nine here, one Verilator build each).
COVER_LANE_CONFIGS = [(1, 1), (1, 4), (2, 2), (4, 1), (4, 4)]
_LANES = os.environ.get("NEUROCORE_LANE_CONFIGS", "cover")
if _LANES not in ("cover", "all"):
    raise ValueError(f"NEUROCORE_LANE_CONFIGS is {_LANES!r}; choose 'cover' or 'all'")
LANE_CONFIGS = ALL_LANE_CONFIGS if _LANES == "all" else COVER_LANE_CONFIGS
N_LANE_NETWORKS = 16
N_LANE_FORWARDING = 4


def random_jobs(seed: int, n: int = N_NETWORKS, **extra) -> list[dict]:
    return [{"seed": seed + i, "steps": STEPS, "label": "random", **extra} for i in range(n)]


def forwarding_jobs(seed: int, n: int = N_FORWARDING, **extra) -> list[dict]:
    return [{"seed": seed + 3000 + i, "steps": STEPS, "label": "forwarding",
             "generator": "forwarding", **extra} for i in range(n)]


def conv_jobs(seed: int, n: int = N_CONV, **extra) -> list[dict]:
    return [{"seed": seed + 5000 + i, "steps": STEPS, "label": "conv", "generator": "conv",
             **extra} for i in range(n)]


def plan(seed: int) -> list[dict]:
    """The whole regression: random, forwarding, backpressure and image-corruption jobs."""
    jobs = random_jobs(seed) + forwarding_jobs(seed) + conv_jobs(seed)
    jobs += [{"seed": seed + 1000 + i, "steps": STEPS, "out_ready": 0.4, "label": "backpressure"}
             for i in range(N_BACKPRESSURE)]
    jobs += [{"seed": seed + 2000 + 100 * i, "steps": STEPS, "mutation": kind, "label": "mutation"}
             for i in range(N_MUTATION_SEEDS) for kind in MUTATION_KINDS]
    return jobs


def lane_plan(seed: int) -> list[dict]:
    """The jobs of one lane configuration other than (1, 1)."""
    return (random_jobs(seed, N_LANE_NETWORKS) + forwarding_jobs(seed, N_LANE_FORWARDING)
            + [{"seed": seed + 1000, "steps": STEPS, "out_ready": 0.4, "label": "backpressure"}])
