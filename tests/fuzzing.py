"""Shared settings of the property-based fuzzers (tests/test_fuzz_*.py).

``FUZZ_EXAMPLES`` (default :data:`CI_EXAMPLES`) sets the cases per fuzzer; a fuzzer made of
several properties splits them by ``share``.  The seed is the session seed
(``NEUROCORE_SEED``, printed in the pytest header), so a failing run is replayed by setting it.
Each property counts the cases it ran with :func:`count`; the totals are printed at the end
of the run and written to ``build/fuzz-counts.json`` (tools/gen_reliability.py reads them).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed

from conftest import base_seed, record_fuzz

#: Cases per fuzzer in CI; set FUZZ_EXAMPLES=10000 (or more) for a long run.
CI_EXAMPLES = 1000


def examples() -> int:
    raw = os.environ.get("FUZZ_EXAMPLES", str(CI_EXAMPLES))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"FUZZ_EXAMPLES must be an integer, not {raw!r}") from None


def fuzz(share: float = 1.0):
    """Decorator: hypothesis settings for ``share`` of a fuzzer's cases, seeded."""
    def wrap(test):
        configured = settings(max_examples=max(1, round(examples() * share)), deadline=None,
                              database=None, suppress_health_check=list(HealthCheck))(test)
        return hypothesis_seed(base_seed())(configured)
    return wrap


def count(fuzzer: str, property_name: str) -> None:
    """Count one case of ``fuzzer`` (e.g. ``"images"``)."""
    record_fuzz(fuzzer, property_name)
