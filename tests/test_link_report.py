"""Link v2 throughput figures (tools/link_report.py): generated from the byte model, the
targets met at the fastest baud option, and docs/boards.md up to date."""

from __future__ import annotations

from conftest import load_tool
from neurocore.boards.protocol import BAUD_OPTIONS, V2_OVERHEAD, image_reply_bytes
from neurocore.sw.link_model import link_bytes_per_image, link_images_per_second

link_report = load_tool("link_report")


def test_link_rows_follow_the_byte_model_and_meet_the_targets():
    rows = link_report.rows()
    assert {r["network"] for r in rows} == set(link_report.TARGETS)
    for r in rows:
        assert (r["to_board"], r["to_host"]) == (r["pixels"] + V2_OVERHEAD,
                                                 image_reply_bytes(r["classes"]))
        assert r["img_s"] == r["baud"] / 10 / r["to_board"]
    pixels = {r["network"]: r["pixels"] for r in rows}
    assert pixels == {"digits_cnn": 64, "mnist_convnet": 784}
    top = max(BAUD_OPTIONS)
    for name, target in link_report.TARGETS.items():
        assert link_images_per_second(pixels[name], 10, top) >= target, name
    assert link_bytes_per_image(784, 10) == (793, 38)


def test_boards_doc_link_section_is_generated_and_current():
    text = link_report.render()
    assert "baud" in text and "img/s" in text and "NOT met" not in text
    assert link_report.main(["--check"]) == 0, "run python tools/link_report.py"
