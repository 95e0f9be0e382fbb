"""Lines found with numpy must be exactly the lines Python's str.split("\\n") gives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtapp.data import lines
from mtapp.data.lines import TextError, split_lines, split_tsv


def python_lines(data: bytes) -> list[str]:
    """The reference: split at \\n, drop one final empty piece, drop a trailing \\r per line."""
    pieces = data.decode("utf-8").split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return [p[:-1] if p.endswith("\r") else p for p in pieces]


TEXT = st.text(alphabet=st.sampled_from(list("ab \t\r\n\n\x85\u2028äß€😀")), max_size=60)


@settings(max_examples=400, deadline=None)
@given(text=TEXT, writable=st.booleans(), block=st.sampled_from([lines.BLOCK, 1, 3, 7]))
def test_split_lines_matches_python_for_any_text_and_block_size(text, writable, block):
    data = text.encode("utf-8")
    raw = np.frombuffer(data, dtype=np.uint8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lines, "BLOCK", block)  # small blocks: lines cross many of them
        result = split_lines(raw.copy() if writable else raw, "t")
    assert result.to_pylist() == python_lines(data)


@pytest.mark.parametrize("block", [lines.BLOCK, 2])
def test_split_tsv_splits_each_line_at_its_tab_in_place(monkeypatch, block):
    monkeypatch.setattr(lines, "BLOCK", block)
    raw = np.frombuffer("Hallo\tHello\r\n\t\nä ö\tß x\r\nend\t".encode(), dtype=np.uint8).copy()
    src, tgt = split_tsv(raw, "t.tsv")
    assert (src.to_pylist(), tgt.to_pylist()) == (["Hallo", "", "ä ö", "end"], ["Hello", "", "ß x", ""])
    with pytest.raises(TextError, match=r"t\.tsv: line 2 has 3 tab-separated fields"):
        split_tsv(np.frombuffer(b"a\tb\na\tb\tc\n", dtype=np.uint8), "t.tsv")
