"""Regenerate the generated sections of docs/ (memory-word tables in docs/spec.md).

Run ``python tools/gen_docs.py``; ``tests/test_spec_doc.py`` fails when docs/ is stale.
"""

from pathlib import Path

from neurocore.bench.report import update_doc_section
from neurocore.spec.geometry import CHIP_PRESETS, CoreGeometry
from neurocore.spec.words import markdown_tables, spare_reset_bits

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec.md"
SPEC_PRESET = "small"
#: The chip whose core's route word (with its ``core`` field, spec §10) is shown as well.
SPEC_CHIP = "ulx3s"


def spec_reset_geometry() -> CoreGeometry:
    """The geometry of the example profile word with periodic reset (spec §11): the preset
    with the widest reset fields its 64-bit profile word has room for."""
    g = CoreGeometry.preset(SPEC_PRESET)
    return g.replace(name=f"{g.name}-reset", reset_bits=spare_reset_bits(g))


def word_tables() -> str:
    chip = CHIP_PRESETS[SPEC_CHIP]
    reset = spec_reset_geometry()
    return (markdown_tables(CoreGeometry.preset(SPEC_PRESET)) + "\n"
            + markdown_tables(chip.core, only=("routes",),
                              title=f" on a core of chip `{chip.name}` ({chip.n_cores} cores)")
            + "\n" + markdown_tables(reset, only=("profiles",),
                                     title=f" with periodic reset (`reset_bits` = "
                                           f"{reset.reset_bits})"))


def main() -> None:
    update_doc_section(SPEC, "word_tables", word_tables())


if __name__ == "__main__":
    main()
