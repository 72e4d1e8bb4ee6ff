"""scripts/recipe_device.py, run.sh's device and stage-4 plan: the librispeech preset defaults to cuda and stops when
torch sees no GPU unless --device cpu is given, the other presets keep cuda-when-available; stage 4 runs one
sidecar shard per GPU (or --nj when given), never one per CPU core on a GPU node."""
import importlib.util
import os

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def recipe_device():
    spec = importlib.util.spec_from_file_location("recipe_device", os.path.join(ROOT, "scripts", "recipe_device.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_librispeech_defaults_to_cuda_and_stops_without_a_gpu_unless_cpu_is_asked_for(recipe_device):
    assert recipe_device.choose_device("librispeech", None, ["0"], "unused") == "cuda"
    with pytest.raises(SystemExit, match=r"run.sh --preset librispeech: --device cuda \(the default of --preset "
                                         r"librispeech\), but torch 2.13.0\+cpu is a CPU-only build\. .* or pass "
                                         r"--device cpu to train on the CPU on purpose"):
        recipe_device.choose_device("librispeech", None, [], recipe_device.no_gpu_reason("2.13.0+cpu", None, None))
    assert recipe_device.choose_device("librispeech", "cpu", [], "unused") == "cpu"


def test_other_presets_use_a_gpu_when_torch_sees_one_and_an_explicit_cuda_needs_one(recipe_device):
    for preset in ("smoke", "demo", "cpu", "evidence"):
        assert recipe_device.choose_device(preset, None, [], "unused") == "cpu"
        assert recipe_device.choose_device(preset, None, ["0", "1"], "unused") == "cuda"
    reason = recipe_device.no_gpu_reason("2.13.0", "12.8", "")
    assert reason == "torch 2.13.0 (CUDA 12.8) sees no GPU: CUDA_VISIBLE_DEVICES is empty"
    with pytest.raises(SystemExit, match="run.sh --preset smoke: --device cuda, but torch 2.13.0 .CUDA 12.8. sees no"):
        recipe_device.choose_device("smoke", "cuda", [], reason)
    with pytest.raises(SystemExit, match="--device gpu: choose cpu or cuda"):
        recipe_device.choose_device("smoke", "gpu", ["0"], "unused")


def test_stage_4_runs_one_shard_per_gpu_or_the_explicit_nj(recipe_device):
    gpus = recipe_device.visible_gpus(4, None)
    assert gpus == ["0", "1", "2", "3"]
    assert recipe_device.sidecar_shards("cuda", gpus, nj=64, nj_explicit=False) == 4  # not nproc processes
    assert recipe_device.sidecar_shards("cuda", gpus, nj=8, nj_explicit=True) == 8
    assert recipe_device.sidecar_shards("cpu", [], nj=16, nj_explicit=False) == 16
    assert recipe_device.visible_gpus(2, "3, 5") == ["3", "5"]  # a scheduler's allocation, as torch numbers them
    assert recipe_device.visible_gpus(1, "GPU-1a2b,7") == ["GPU-1a2b"]
