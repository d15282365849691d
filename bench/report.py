"""Write generated result blocks into Markdown docs between named markers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["update_doc_section", "publish"]


def update_doc_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->`` in ``path``.

    The markers are appended (under a heading) if the file does not have them yet.
    """
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    path.write_text(text)


def publish(root: Path, name: str, result: dict, text: str, update_docs: bool) -> None:
    """Write ``result`` to ``bench/results/NAME.json``, print ``text`` and, with
    ``update_docs``, put it in docs/performance.md between the ``NAME`` markers."""
    import json

    out = root / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(text)
    if update_docs:
        update_doc_section(root / "docs" / "performance.md", name, text)
