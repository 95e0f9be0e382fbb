"""`python -m mtapp.translate`: translate text with a trained run, one output line per input line.

python -m mtapp.translate --run DIR [--input FILE] [--output FILE] [--beam 5] [--nbest N] [--scores] ...
echo "Ein Hund läuft." | python -m mtapp.translate --run runs/multi30k_de_en_transformer

The input is read as a stream, in chunks of --buffer-lines lines: each chunk is batched,
translated, written in input order and flushed before the next is read, so memory is bounded by
the chunk, not the input. When the input pauses (a terminal, a pipe that stays open) the lines
that have arrived are translated at once. SIGINT / SIGTERM stop after writing every finished
chunk and say from which input line to continue.

Output: one translation per input line; with --nbest N (N > 1) or --scores, one hypothesis per
line instead, as `LINE<TAB>RANK<TAB>SCORE<TAB>TEXT` (input line number and rank from 1; score =
log-probability / (subwords + 1) ** length_penalty; the text is the last field).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from mtapp import inference, rundir
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.ct2 import ExportError
from mtapp.data.corpora import CorpusError, not_a_file
from mtapp.progress import bar_settings
from mtapp.translator import Scored, Translator

log = logging.getLogger("mtapp.translate")

STALL_SECONDS = 0.05  # input that pauses this long is translated without waiting for a full chunk


def open_input(path: Path | None) -> Iterator[bytes]:
    """The input's lines as bytes (each with its \\n, but for a last line without one)."""
    if path is None:
        try:
            return fd_lines(sys.stdin.fileno())
        except (AttributeError, io.UnsupportedOperation):  # a stand-in stdin without a file descriptor
            return iter(sys.stdin.buffer.readline, b"")
    if not path.is_file():
        raise CorpusError(f"--input: {not_a_file(path)}")
    stream = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 (read to the end)
    return iter(stream.readline, b"")


def fd_lines(fd: int) -> Iterator[bytes]:
    """Lines read from a file descriptor with os.read: no buffered stdin object is held by the
    reading thread, whose lock would abort the interpreter's shutdown after a SIGINT
    ("could not acquire lock for <stdin> at interpreter shutdown")."""
    pending = b""
    while data := os.read(fd, 1 << 16):
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


class LineReader:
    """Lines of bytes (`open_input`), read by a background thread into a bounded queue, handed
    out in chunks. Lines split at \\n only, without it and a \\r just before it (as files are
    read everywhere in mtapp). A line that is not UTF-8 is kept with U+FFFD in place of its bad
    bytes, and counted (`bad_lines`): it costs no line its output."""

    END = object()

    def __init__(self, lines: Iterator[bytes], name: str, ahead: int):
        self.name, self.bad_lines = name, []
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)  # read-ahead bounded: memory too
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines: Iterator[bytes]) -> None:
        try:
            for number, raw in enumerate(lines, 1):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                line = line[:-1] if line.endswith(b"\r") else line
                try:
                    self._queue.put(line.decode("utf-8"))
                except UnicodeDecodeError:
                    self.bad_lines.append(number)
                    self._queue.put(line.decode("utf-8", errors="replace"))
        except OSError as e:
            self._queue.put(CorpusError(f"{self.name} could not be read ({e})"))
        self._queue.put(self.END)

    def _next_line(self, poll: float = 0.5):
        """The next queued item, however long the input takes. It waits `poll` seconds at a time:
        a signal the kernel hands to another thread (the reader, torch's) does not wake a thread
        blocked on the queue, but Python runs its handler in the main thread once it returns."""
        while True:
            try:
                return self._queue.get(timeout=poll)
            except queue.Empty:
                continue

    def chunks(self, size: int, stall: float = STALL_SECONDS) -> Iterator[list[str]]:
        """Chunks of at most `size` lines; a chunk ends early when the input pauses `stall` seconds."""
        done = False
        while not done:
            item = self._next_line()
            chunk: list[str] = []
            while True:
                if isinstance(item, Exception):
                    raise item
                if item is self.END:
                    done = True
                    break
                chunk.append(item)
                if len(chunk) == size:
                    break
                try:
                    item = self._queue.get(timeout=stall)
                except queue.Empty:
                    break
            if chunk:
                yield chunk


class Stopped(Exception):
    """SIGTERM, raised where the main thread is, as SIGINT raises KeyboardInterrupt."""


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signal.Signals(signum).name)


def format_lines(found: list[list[Scored]], first_line: int, scored: bool) -> str:
    """Output text for a chunk whose first input line is number `first_line` (from 1)."""
    if not scored:
        return "".join(hyps[0].text + "\n" for hyps in found)
    return "".join(
        f"{first_line + i}\t{rank}\t{h.score:.4f}\t{h.text}\n"
        for i, hyps in enumerate(found)
        for rank, h in enumerate(hyps, 1)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.translate", description="Translate text, line by line.")
    inference.add_model_args(p)
    p.add_argument("--input", type=Path, help="input file, plain or .gz (default: standard input)")
    p.add_argument("--output", type=Path, help="output file (default: standard output)")
    p.add_argument("--nbest", type=int, help="hypotheses per input line, <= beam (default: the run's decode.nbest)")
    p.add_argument("--scores", action="store_true", help="write LINE, RANK, SCORE, TEXT per hypothesis")
    p.add_argument("--buffer-lines", type=int, default=2000, help="lines read, sorted and batched at a time")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.buffer_lines < 1:
        p.error(f"--buffer-lines {args.buffer_lines}: give at least 1")
    try:
        rundir.check_output(args.output)
        translator = inference.load(args).translator
        stream = open_input(args.input)
    except (CheckpointError, ConfigError, CorpusError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = str(args.input) if args.input else "standard input"
    reader = LineReader(stream, name, ahead=2 * args.buffer_lines)
    target = args.output or "standard output"
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    written = [0]  # lines written so far, kept when a signal interrupts
    try:
        with open(args.output, "wb") if args.output else contextlib.nullcontext(sys.stdout.buffer) as out:
            translate_stream(translator, reader, out, args, written)
    except (KeyboardInterrupt, Stopped) as e:
        why = e.args[0] if isinstance(e, Stopped) else "SIGINT"
        n = written[0]
        print(
            f"\ninterrupted ({why}): {n} line(s) translated and written to {target}; continue from input line "
            f"{n + 1} (e.g. tail -n +{n + 1} {args.input or 'INPUT'} | python -m mtapp.translate ...)",
            file=sys.stderr,
        )
        return 130 if why == "SIGINT" else 143
    except CorpusError as e:
        print(f"error: {e}; {written[0]} line(s) were written to {target}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    if reader.bad_lines:
        shown = ", ".join(map(str, reader.bad_lines[:10])) + (", ..." if len(reader.bad_lines) > 10 else "")
        log.warning(
            "%d line(s) of %s are not valid UTF-8 (line %s): their bad bytes were read as U+FFFD and translated",
            len(reader.bad_lines),
            name,
            shown,
        )
    return 0


def translate_stream(translator: Translator, reader: LineReader, out: BinaryIO, args, written: list[int]) -> None:
    """Chunk by chunk: translate, write in input order, flush; `written[0]` counts the lines written."""
    scored = args.scores or translator.decode.nbest > 1
    with tqdm(desc="translating", unit="line", disable=not (args.input or args.output), **bar_settings()) as bar:
        for chunk in reader.chunks(args.buffer_lines):
            text = format_lines(translator.translate_nbest(chunk), written[0] + 1, scored).encode("utf-8")
            with deferred_signals():  # the count is what was written
                out.write(text)  # UTF-8, whatever the locale
                out.flush()
                written[0] += len(chunk)
            bar.update(len(chunk))


@contextlib.contextmanager
def deferred_signals():
    """SIGINT and SIGTERM that arrive inside the block act when it ends. (Blocking them with
    pthread_sigmask held only for the main thread: the kernel then handed a signal to the reader
    thread or one of torch's, and Python raised it in the main thread inside the block anyway.)"""
    caught: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {kind: signal.signal(kind, lambda signum, frame: caught.append(signum)) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
        for signum in caught:
            signal.raise_signal(signum)  # now its own handler: KeyboardInterrupt, or Stopped


if __name__ == "__main__":
    sys.exit(main())
