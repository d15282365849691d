"""The README's Python examples run as written (docs are tests)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    first = re.search(r"```sh\n(.*?)```", text, flags=re.S).group(1).splitlines()
    assert first[0].startswith("make demo") and first[1].startswith("make test"), first


@pytest.mark.lava
def test_readme_python_examples_run(monkeypatch, model_cache, digits_cnn):
    monkeypatch.setenv("NEUROCORE_CACHE", str(model_cache))   # the session's trained CNN
    blocks = _blocks()
    assert len(blocks) >= 3, "README lost its Python examples"
    namespace = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["result"].first_spike("outputs")[0, :4].tolist() == [6, 4, -1, 4]
    assert namespace["program"].n_steps == 80
