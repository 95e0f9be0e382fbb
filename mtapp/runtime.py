"""Where and how computation runs: device choice, mixed precision, seeds, threads, memory reuse."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import random
import resource
from pathlib import Path

import numpy as np
import torch


def select_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The low precision dtype for `amp` (auto | off | bf16 | fp16 | bf16-pure) on `device`, None
    for float32: autocast's, or with bf16-pure the parameters' (`pure_bf16`: no autocast then).

    auto: bf16 on GPUs that support it, else fp16; on CPUs bf16 only where the processor has
    native bf16 instructions (AVX512-BF16 or AMX), where it is ~2x faster than float32.
    """
    if amp == "off":
        return None
    if amp in ("bf16", "bf16-pure"):
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def pure_bf16(device: torch.device, amp: str) -> bool:
    """Whether `amp` trains a bf16 model with float32 master weights (`mtapp.master`) instead of
    autocast; refused, with what to do, where bf16 cannot run."""
    if amp != "bf16-pure":
        return False
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(
            f"train.amp is 'bf16-pure' but {torch.cuda.get_device_name(device)} has no bf16 support; "
            "set train.amp: auto (fp16 autocast with a gradient scaler there) or off"
        )
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"train.amp 'bf16-pure' runs on the CPU or CUDA, not on {device.type}; set train.amp: auto")
    return True


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The dtype training runs autocast in: `amp_dtype`'s, None with bf16-pure (the model is bf16)."""
    return None if pure_bf16(device, amp) else amp_dtype(device, amp)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this machine's processor has bf16 instructions (read once from /proc/cpuinfo)."""
    try:
        return native_bf16_in(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def native_bf16_in(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists AVX512-BF16 or AMX-BF16 among the flags."""
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads() -> None:
    """Use every core the process may run on (cgroup/affinity aware) for intra-op work, shared
    evenly between the processes torchrun started on this machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def in_own_thread(fn, *args):
    """`fn(*args)` run in a thread of its own, which ends before this returns its result (or raises
    its exception). For work whose parallel ops must not tie a thread team to the calling thread:
    with libgomp (PyTorch's OpenMP on Linux) each thread that runs a parallel op keeps its own team
    of threads for as long as it lives, and once the teams' threads outnumber the cores libgomp
    stops spin-waiting between parallel regions, so every small op waits for sleeping threads. The
    server loads its model this way, so that the batching worker's team is the only one: loaded on
    the main thread, a beam-5 request of one sentence took 102 ms instead of 50 ms (2-core Intel
    Xeon, session 16; `bench serve` at 16 clients: 0.60x the throughput)."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mtapp-work") as pool:
        return pool.submit(fn, *args).result()  # leaving the block joins the thread


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocation instead of returning it to
    the kernel. A training step allocates and frees the same few hundred MB of activations,
    a decoding step its logits and key/value cache (tens of MB each); by default large blocks
    are mmapped and unmapped when freed (the threshold rises with the sizes freed, to 32 MB at
    most) and a freed heap top beyond twice it is trimmed, so every step page-faults (and the
    kernel zeroes) much of it again (one-off measurements, issue #7 notes: ~20k page faults per
    training step, 3-5% of the CPU time in the kernel; 364k-726k faults decoding
    test_2016_flickr with a 32 MB threshold, 95k-111k without mmap). Now every block comes
    from the heap (mmap is not used for large blocks), and the heap is trimmed only beyond
    1 GB of free memory: between steps RSS stays near the step's peak instead of falling and
    rising again (tests/test_runtime.py shows the faults go away).
    Returns False (and does nothing) where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_MMAP_MAX, 0))


KERNEL_CACHE_ENTRIES = 16  # oneDNN primitives (and ideep's computations) kept per process, each shape its own


def bound_kernel_caches(entries: int = KERNEL_CACHE_ENTRIES) -> None:
    """Keep at most `entries` compiled oneDNN kernels, unless the user set the variables.

    bf16 matrix products on the CPU run through oneDNN, which compiles a kernel (a primitive,
    with its own scratch buffers) per operand shape and caches 1,024 of them; ideep caches as
    many again. Token batches give nearly every batch new shapes, so a bf16 training process
    filled both caches and grew from 1.3 GB to 4.4 GB in 300 updates (issue #21; float32 goes
    through MKL's sgemm and has no such cache). A new shape's kernel took 0.3-3 ms to compile
    against 7-16 ms for the product (one-off measurement); bounded, training was 1.20x faster in
    interleaved runs (the big cache is memory traffic too) and used 1.2 GB instead of 3.8 GB.
    Takes effect when set before the first bf16 product of the process."""
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(entries))


def memory_policy() -> None:
    """How mtapp's commands use memory: freed blocks reused (`keep_freed_memory`), kernel
    caches bounded (`bound_kernel_caches`)."""
    keep_freed_memory()
    bound_kernel_caches()


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MB (Linux: /proc/self/statm;
    elsewhere only the peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        now = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        now = float("nan")
    return {"rss_mb": now, "peak_rss_mb": max(peak, now)}  # the kernel's high-water mark lags a little


def missing_extra(extra: str, error: ModuleNotFoundError, needs: str) -> str:
    """What to say when `needs` (a command or feature) lacks a package of an optional extra."""
    return (
        f"{needs} needs {error.name}, part of mtapp's '{extra}' extra, which is not installed: "
        f"pip install 'mtapp[{extra}]' (in a checkout: pip install -e '.[{extra}]', or bash scripts/install.sh)"
    )
