import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from mtapp import runtime
from mtapp.config import DecodeConfig, TrainConfig

ROUNDS = """
import json, resource, sys, torch
from mtapp.runtime import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for r in range(6):  # training steps: large activations of each batch's own sizes, all freed at its end
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensors = [torch.ones((1 + (r * 7 + i) % 5) * 2**20 + r * 2**16) for i in range(16)]  # 4-20 MB each
    tensors.append(torch.ones(10 * 2**20 + r * 2**16))  # and one over 40 MB (decoding's logits, KV cache)
    del tensors
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def page_faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_activations_are_reused_without_page_faults_once_memory_is_kept():
    default, kept = page_faults("default"), page_faults("keep")
    first = default["faults"][0]  # ~230 MB of 4 KB pages, faulted in once at least
    assert first > 40_000
    assert sum(default["faults"][1:]) > first  # by default much of it goes back to the kernel, step after step
    assert kept["kept"] is True
    assert sum(kept["faults"][1:]) < sum(default["faults"][1:]) / 3  # kept: later steps mostly reuse it
    assert kept["faults"][-1] < first / 100


def test_auto_precision_is_bf16_exactly_on_cpus_with_bf16_instructions_and_decoding_is_float32(monkeypatch):
    cpu = torch.device("cpu")
    assert runtime.native_bf16_in("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert runtime.native_bf16_in("flags\t\t: fpu amx_tile amx_bf16\n")
    assert not runtime.native_bf16_in("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t\t: avx512_bf16x\n")
    for native in (True, False):  # what each kind of CI machine resolves, checked on either
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert runtime.amp_dtype(cpu, TrainConfig().amp) == (torch.bfloat16 if native else None)
        assert runtime.amp_dtype(cpu, DecodeConfig().amp) is None  # decoding: float32 on both kinds
        assert runtime.amp_dtype(cpu, "bf16") is torch.bfloat16  # forced bf16 runs anywhere (slowly)


SHAPES = """
import json, random, sys, torch
from mtapp.runtime import memory_mb, memory_policy
if sys.argv[1] == "bounded":
    memory_policy()
random.seed(0)
layer = torch.nn.Linear(256, 1024)
rss = []
for i in range(240):  # token batches: a new number of rows nearly every time
    x = torch.randn(random.randint(100, 400) * 8, 256, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x).float().sum().backward()
    if i in (39, 239):
        rss.append(memory_mb()["rss_mb"])
print(json.dumps(rss))
"""


def growth_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    out = subprocess.run([sys.executable, "-c", SHAPES, mode], capture_output=True, text=True, check=True, env=env)
    first, last = json.loads(out.stdout)
    return last - first


@pytest.mark.skipif(not runtime.cpu_has_native_bf16(), reason="bf16 products run through oneDNN's kernels here")
def test_bounded_kernel_caches_stop_bf16_training_memory_growing_with_each_new_batch_shape():
    unbounded, bounded = growth_mb("default"), growth_mb("bounded")
    assert unbounded > 100  # every new shape kept its compiled kernel and buffers
    assert bounded < unbounded / 4


def test_kernel_cache_bounds_leave_a_users_own_setting_alone(monkeypatch):
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "")  # recorded, so that the test's own setting is undone after it
    monkeypatch.delenv("LRU_CACHE_CAPACITY")
    runtime.bound_kernel_caches(16)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"
    assert os.environ["LRU_CACHE_CAPACITY"] == "16"


def test_in_own_thread_runs_the_work_in_a_thread_that_has_ended_and_hands_back_its_result():
    import threading

    ran = {}

    def work(x):
        ran["thread"] = threading.current_thread()
        return x * 2

    assert runtime.in_own_thread(work, 21) == 42
    assert ran["thread"] is not threading.current_thread() and not ran["thread"].is_alive()

    def fails():
        raise KeyError("no model")

    with pytest.raises(KeyError, match="no model"):  # the caller gets the worker's own exception
        runtime.in_own_thread(fails)
