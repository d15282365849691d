"""docs/spec.md's word tables are generated from spec/words.py and must not go stale."""

from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


def _gen():
    return load_tool("gen_docs")


def test_word_tables_match_layouts():
    gen = _gen()
    text = (ROOT / "docs" / "spec.md").read_text()
    begin, end = "<!-- begin:word_tables -->", "<!-- end:word_tables -->"
    assert begin in text and end in text, "docs/spec.md lost its word_tables markers"
    current = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert current == gen.word_tables().strip(), \
        "docs/spec.md word tables are stale: run `python tools/gen_docs.py`"


def test_every_memory_has_a_table():
    from neurocore.spec.geometry import CoreGeometry
    from neurocore.spec.words import memories
    text = (ROOT / "docs" / "spec.md").read_text()
    for name in memories(CoreGeometry.preset("small")):
        assert f"#### `{name}`" in text, f"docs/spec.md has no table for memory {name}"
