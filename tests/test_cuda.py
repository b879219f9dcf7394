"""The CUDA-only checks of gpu-check as tests (skipped, with the reason, where there is no GPU):
a bf16 CycleGAN step against fp32, a GPU checkpoint resumed on the CPU and back, a classifier
epoch with AMP, Grad-CAM on CUDA against the CPU's."""
from __future__ import annotations

import pytest
import torch

from pipelines.perf import gpucheck

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: these checks need a GPU")


def test_a_bf16_cyclegan_step_matches_fp32_within_its_bound():
    result = gpucheck.check_bf16_step()
    assert result["ok"], result


def test_a_gpu_checkpoint_resumes_on_the_cpu_and_back(tmp_path):
    result = gpucheck.check_checkpoint_round_trip(tmp_path)
    assert result["ok"], result


def test_the_classifier_trains_an_epoch_with_amp(tmp_path):
    data = gpucheck.prepare_data(tmp_path / "data", per_class=6, held_out=2, size=64)
    result = gpucheck.check_classifier_amp(data, tmp_path)
    assert result["ok"] and result["precision"] in ("bf16", "fp16"), result


def test_gradcam_on_cuda_equals_the_cpus():
    result = gpucheck.check_gradcam_matches_cpu()
    assert result["ok"], result
