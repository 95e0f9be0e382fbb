"""Issue #17: `translate` streams, never loses a line, checks its flags before any work, and
writes n-best lists with scores (evaluate's line-count error: tests/test_scoring.py)."""

import io
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mtapp import translate
from mtapp.checkpoint import load_checkpoint, save_checkpoint
from mtapp.translate import LineReader
from tests.synthetic import synthetic_pairs

ROOT = Path(__file__).resolve().parent.parent


def run_translate(run, lines: list[str], tmp: Path, *options: str) -> list[str]:
    (tmp / "in.txt").write_text("".join(line + "\n" for line in lines))
    out = tmp / "out.txt"
    assert translate.main(["--run", str(run), "--input", str(tmp / "in.txt"), "--output", str(out), *options]) == 0
    return out.read_text().split("\n")[:-1]


# ---- reading: lines as files are read, in chunks that end when the input pauses -----------------


def test_the_reader_splits_like_files_keeps_bad_bytes_visible_and_chunks_by_size():
    data = b"w01 w02\r\nw03\xc2\x85w04\n\nw05 \xe4\nlast"  # U+0085 is no line end here
    reader = LineReader(iter(io.BytesIO(data).readline, b""), "test input", ahead=4)
    chunks = list(reader.chunks(2))
    assert chunks == [["w01 w02", "w03\x85w04"], ["", "w05 \ufffd"], ["last"]]
    assert reader.bad_lines == [4]


def test_a_chunk_ends_when_the_input_pauses():
    read, write = os.pipe()
    reader = LineReader(translate.fd_lines(read), "pipe", ahead=100)
    chunks = reader.chunks(100, stall=0.05)
    os.write(write, b"one\ntwo\n")
    assert next(chunks) == ["one", "two"]  # not waiting for 100 lines, nor for the end
    os.write(write, b"three\n")
    os.close(write)
    assert list(chunks) == [["three"]]


# ---- streaming through the real command -----------------------------------------------------


class Lines:
    """Lines of a subprocess's stdout as they arrive, each within a deadline (raw reads: a
    buffered reader would hold lines that select() no longer sees)."""

    def __init__(self, stream):
        self.fd, self.pending = stream.fileno(), b""

    def next(self, seconds: float) -> str | None:
        deadline = time.monotonic() + seconds
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            data = os.read(self.fd, 65536)
            if not data:
                return None
            self.pending += data
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()


def start_translate(run, first_input: bytes) -> tuple[subprocess.Popen, Lines]:
    """`python -m mtapp.translate` reading a pipe that stays open, `first_input` written to it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mtapp.translate", "--run", str(run), "--beam", "1"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # as from a terminal: a suite started in the background (no job control) ignores SIGINT,
        # and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdin.write(first_input)
    proc.stdin.flush()
    return proc, Lines(proc.stdout)


def test_a_line_on_an_open_pipe_is_translated_before_the_input_ends(trained):
    _, run = trained
    started = time.monotonic()
    proc, out = start_translate(run, b"w01 w02 w03\n")
    try:
        first = out.next(60)  # the input stays open: the old command waited for its end
        assert first is not None and first.strip(), "no translation while the input was open"
        print(f"first translation after {time.monotonic() - started:.2f} s (model loading included)")
        proc.stdin.write(b"w04 w05\n")
        proc.stdin.flush()
        assert out.next(30).strip()
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        proc.kill()


def test_sigint_says_how_many_lines_were_written_and_where_to_continue(trained):
    _, run = trained
    proc, out = start_translate(run, b"w01 w02 w03\nw04\n")
    try:
        assert out.next(60) is not None and out.next(30) is not None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        err = proc.stderr.read().decode()
        assert "interrupted (SIGINT): 2 line(s) translated and written" in err
        assert "continue from input line 3" in err
    finally:
        proc.kill()


# ---- no line lost: lines beyond the model's position table -----------------------------------


def test_lines_longer_than_the_position_table_are_translated_in_pieces(trained, tmp_path, caplog):
    """The trained tiny Transformer with a position table of 24 (its sinusoids are not
    parameters): sources may have 23 subwords, and the output limit 1.5 * 23 + 10 would run past
    the table if it were not capped."""
    _, run = trained
    content = load_checkpoint(run / "checkpoint_best.pt")
    content["config"]["model"]["max_positions"] = 24
    content["config"]["data"]["max_len"] = 23  # a config whose pairs the table cannot hold is refused
    save_checkpoint(tmp_path / "short.pt", {k: v for k, v in content.items() if k != "format"})
    words = [s for s, _ in synthetic_pairs(40, seed=21, min_len=5, max_len=9)]
    sentences = " ".join(w + "." for w in words[:20])  # 20 sentences of 5-9 words, one line
    no_ends = " ".join(words[20:])  # about 140 words without a sentence end
    lines = ["w01 w02", sentences, "", no_ends, "w03 w04"]
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out.txt"
    args = ["--checkpoint", str(tmp_path / "short.pt"), "--input", str(tmp_path / "in.txt"), "--output", str(out)]
    assert translate.main([*args, "--beam", "3", "--no-split-sentences"]) == 0  # whole lines
    got = out.read_text().split("\n")[:-1]
    assert len(got) == len(lines) and got[2] == ""
    assert "2 input line(s) longer than the model's limit of 23 subwords were split" in caplog.text
    caplog.clear()
    assert translate.main([*args, "--beam", "3"]) == 0  # sentence by sentence: only the one without ends is cut
    assert "1 sentence(s) longer than the model's limit of 23 subwords were split" in caplog.text
    assert len(out.read_text().split("\n")[:-1]) == len(lines)
    for i in (1, 3):  # several pieces' worth of output (one piece gives at most ~11 words): nothing was cut off
        assert len(got[i].split()) >= 0.5 * len(lines[i].replace(".", "").split()), got[i]
    short = translate.main(["--run", str(run), "--input", str(tmp_path / "in.txt"), "--output", str(out)])
    assert short == 0 and [got[0], got[4]] == [out.read_text().split("\n")[i] for i in (0, 4)]


# ---- n-best and scores ------------------------------------------------------------------------


def test_nbest_writes_line_rank_score_text_and_its_first_rank_is_the_plain_output(trained, tmp_path):
    _, run = trained
    lines = [s for s, _ in synthetic_pairs(6, seed=5)]
    lines[2] = ""
    plain = run_translate(run, lines, tmp_path, "--beam", "4")
    rows = [row.split("\t", 3) for row in run_translate(run, lines, tmp_path, "--beam", "4", "--nbest", "3")]
    by_line = {}
    for number, rank, score, text in rows:
        by_line.setdefault(int(number), []).append((int(rank), float(score), text))
    assert sorted(by_line) == list(range(1, 7))
    assert by_line[3] == [(1, 0.0, "")]  # an empty line: one empty hypothesis
    for number, hyps in by_line.items():
        if number != 3:
            assert [r for r, _, _ in hyps] == [1, 2, 3]
            assert [s for _, s, _ in hyps] == sorted((s for _, s, _ in hyps), reverse=True)
        assert hyps[0][2] == plain[number - 1]
    scored = [row.split("\t", 3) for row in run_translate(run, lines, tmp_path, "--beam", "4", "--scores")]
    assert [(int(n), int(r), t) for n, r, _, t in scored] == [(i + 1, 1, p) for i, p in enumerate(plain)]


# ---- one validation path: flags are checked as decode.* keys, before any work -----------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beam", "0"], r"--beam 0: decode\.beam must lie in \[1, inf\]"),
        (["--max-tokens", "0"], r"--max-tokens 0: decode\.max_tokens must lie in"),
        (["--length-penalty", "-1"], r"--length-penalty -1.0: decode\.length_penalty must lie in"),
        (["--beam", "2", "--nbest", "3"], r"--nbest \(3\) must not exceed --beam \(2\)"),
        (["--output", "no/such/dir/out.txt"], r"--output no/such/dir/out.txt: the folder no/such/dir does not exist"),
    ],
)
def test_bad_flags_are_refused_with_the_flag_named(trained, capsys, flags, message):
    import re

    _, run = trained
    assert translate.main(["--run", str(run), *flags]) == 2
    assert re.search("error: " + message, capsys.readouterr().err)


def test_an_output_folder_that_does_not_exist_is_refused_before_the_model_loads(tmp_path, capsys):
    missing = tmp_path / "no-run"  # not even a run: the output is checked first
    assert translate.main(["--run", str(missing), "--output", str(tmp_path / "x" / "out.txt")]) == 2
    assert "the folder" in capsys.readouterr().err


def test_a_signal_during_a_chunks_write_acts_once_the_chunk_is_counted():
    """SIGINT/SIGTERM sent while a chunk is written (from any thread of the process) wait for
    the block's end, so the reported count is what was written."""
    # Python's own SIGINT handler, as from a terminal (a suite started in the background ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt), translate.deferred_signals():
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
            sender.start()
            sender.join()  # sent (on a busy machine the thread may start late: waiting a fixed time was flaky)
            time.sleep(0.2)  # the main thread has run the handler by now: it must not interrupt the block
            done.append("written and counted")
        assert done == ["written and counted"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    finally:
        signal.signal(signal.SIGINT, previous)
