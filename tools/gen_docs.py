"""Regenerate the generated sections of docs/ (memory-word tables in docs/spec.md).

Run ``python tools/gen_docs.py``; ``tests/test_spec_doc.py`` fails when docs/ is stale.
"""

from pathlib import Path

from neurocore.bench.report import update_doc_section
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import markdown_tables

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec.md"
SPEC_PRESET = "small"


def word_tables() -> str:
    return markdown_tables(CoreGeometry.preset(SPEC_PRESET))


def main() -> None:
    update_doc_section(SPEC, "word_tables", word_tables())


if __name__ == "__main__":
    main()
