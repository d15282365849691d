"""docs/reliability.md stays true: it is what tools/gen_reliability.py renders, every test it
names exists, and the fuzz counts it reports reach the CI minimum."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import load_tool
from fuzzing import CI_EXAMPLES

ROOT = Path(__file__).resolve().parent.parent


def tool():
    return load_tool("gen_reliability")


def test_doc_table_is_the_tools_rendering():
    gen = tool()
    doc = (ROOT / "docs" / "reliability.md").read_text()
    assert doc.split(gen.COUNTS_MARK)[0].rstrip() == gen.render_table().rstrip(), \
        "docs/reliability.md is stale: run make reliability-doc"


def test_every_named_test_exists():
    gen = tool()
    named = [t for _, _, tests in gen.CLASSES for t in tests]
    assert len(named) >= len(gen.CLASSES)
    for node in named:
        path, name = node.split("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{node} does not exist"


def test_reported_fuzz_counts_reach_the_ci_minimum():
    gen = tool()
    counts = (ROOT / "docs" / "reliability.md").read_text().split(gen.COUNTS_MARK)[1]
    rows = re.findall(r"^\| ([^|]+) \| ([\d,]+) \|", counts, re.M)
    assert {name.strip() for name, _ in rows} >= {"images", "host frame parser",
                                                  "BoardLink vs scripted board",
                                                  "CLI path arguments"}, rows
    assert all(int(n.replace(",", "")) >= CI_EXAMPLES for _, n in rows), rows
    failed = re.findall(r"^\|.*\| (\S+) \|$", counts, re.M)[2:]
    assert failed and set(failed) == {"0"}, f"a recorded fuzz run failed: {failed}"
