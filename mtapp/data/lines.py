"""UTF-8 bytes → Arrow string arrays of lines, found with numpy: no Python string per line.

A line ends at \\n, and a \\r just before it is dropped, so \\n and \\r\\n files read the same;
a last line without \\n counts; blank lines are kept. Other characters Unicode calls line
breaks stay inside their line. Bytes that are not UTF-8 are an error naming the text, the
line and the byte offset: nothing is replaced or skipped.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class TextError(ValueError):
    """Text that is not UTF-8, or a TSV line without exactly two fields (the message says which)."""


BLOCK = 1 << 26  # bytes scanned at a time: temporaries stay at this size, whatever the file's


def split_lines(raw: np.ndarray, name: str) -> pa.LargeStringArray:
    """The lines of the UTF-8 bytes `raw` (uint8; see the module docstring); `name` names the
    text in errors. A writable `raw` is reused for the result, compacted in place."""
    check_utf8(raw, name)
    starts, stops = line_bounds(raw)
    return gather(raw, starts, stops, in_place=raw.flags.writeable)


def split_tsv(raw: np.ndarray, name: str) -> tuple[pa.LargeStringArray, pa.LargeStringArray]:
    """The two tab-separated fields of every line: (sources, targets)."""
    check_utf8(raw, name)
    starts, stops = line_bounds(raw)
    tabs = positions(raw, 9)  # every tab lies inside a line: \n and \r are not tabs
    line_of_tab = np.searchsorted(starts, tabs, side="right") - 1
    fields = np.bincount(line_of_tab, minlength=len(starts)) + 1
    bad = np.flatnonzero(fields != 2)
    if bad.size:
        line = int(bad[0])
        raise TextError(f"{name}: line {line + 1} has {fields[line]} tab-separated fields, expected 2 (source, target)")
    targets = gather(raw, tabs + 1, stops)  # copied out first: compacting the sources overwrites them
    return gather(raw, starts, tabs, in_place=raw.flags.writeable), targets


def positions(raw: np.ndarray, byte: int) -> np.ndarray:
    """int64 positions of every `byte` in `raw`, scanned block by block."""
    found = [np.flatnonzero(raw[i : i + BLOCK] == byte) + i for i in range(0, raw.size, BLOCK)]
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)


def line_bounds(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops): line i is raw[starts[i]:stops[i]], without its \n and a \r before it."""
    newlines = positions(raw, 10)
    ends = newlines if raw.size == 0 or raw[-1] == 10 else np.r_[newlines, raw.size]
    starts = np.r_[0, newlines + 1][: len(ends)].astype(np.int64)
    stops = ends.astype(np.int64)
    has_cr = stops > starts
    has_cr[has_cr] = raw[stops[has_cr] - 1] == 13
    return starts, stops - has_cr


def gather(raw: np.ndarray, starts: np.ndarray, stops: np.ndarray, in_place: bool = False) -> pa.LargeStringArray:
    """The byte ranges raw[starts[i]:stops[i]] as strings (ranges sorted and disjoint; raw is
    valid UTF-8 and no range cuts a character, as line and tab bounds never do).

    Blocks of about BLOCK bytes are copied one after another, into a new buffer or, `in_place`,
    to the front of `raw` itself: a block never lands beyond its own start, so no byte is
    overwritten before it is read."""
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(stops - starts, out=offsets[1:])
    out = raw if in_place else np.empty(int(offsets[-1]), dtype=np.uint8)
    edges = np.unique(np.r_[np.searchsorted(starts, np.arange(0, raw.size, BLOCK)), len(starts)])
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        low, high = int(starts[a]), int(stops[b - 1])
        inside = np.zeros(high - low + 1, dtype=np.int8)  # +1 at a start, -1 at a stop: cumsum = 1 inside
        inside[starts[a:b] - low] += 1  # starts (and stops) are strictly increasing: no repeated index
        inside[stops[a:b] - low] -= 1
        np.cumsum(inside, out=inside)
        out[offsets[a] : offsets[b]] = raw[low:high][inside[:-1].view(bool)]
    values = out[: offsets[-1]]
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(values))


def check_utf8(raw: np.ndarray, name: str) -> None:
    """Raise `TextError` naming the line and byte offset of the first byte that is not UTF-8.

    Arrow validates all bytes at once (as one string, no copy); only when that fails does
    Python decode the text to find where."""
    whole = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, raw.size], np.int64)), pa.py_buffer(raw))
    try:
        whole.validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    data = raw.tobytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TextError(
            f"{name}: line {line} is not valid UTF-8 (byte offset {e.start}); convert the file to UTF-8"
        ) from None
    raise TextError(f"{name} is not valid UTF-8; convert the file to UTF-8")
