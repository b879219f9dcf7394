"""`make bench QUICK=1` runs every code path and its JSON has every field (no timing asserted)."""
from __future__ import annotations

import json

import pytest

from fake_reference import fake_reference
from pipelines.perf.bench import run_bench, table
from runkit.device import native_bf16


@pytest.mark.integration
def test_quick_bench_runs_every_step_and_records_every_field(tmp_path):
    reference = fake_reference(tmp_path / "reference")
    path = run_bench(quick=True, backbones=("resnet18", "efficientnet_lite0"), out_dir=tmp_path, reference=reference,
                     log=lambda m: None)
    result = json.loads(path.read_text())
    for key in ("device", "torch", "threads", "cpu", "matmul", "gan", "gan_busy", "gan_region", "gan_data",
                "classifier", "onnx", "data", "epoch", "lungs", "layout", "gan_layout", "predict", "evaluation"):
        assert key in result, key
    assert [o["backbone"] for o in result["onnx"]] == ["resnet18", "efficientnet_lite0"]
    for o in result["onnx"]:
        assert set(o["batches"]) == {"1", "32"} and all(
            r["pytorch_images_per_s"] > 0 and r["onnxruntime_images_per_s"] > 0 for r in o["batches"].values())
    assert result["matmul"]["gflops"]["median"] > 0
    assert result["matmul"]["gflops"] == result["matmul"]["kernels"][result["matmul"]["kernel"]]
    assert {(g["arch"], g["size"]) for g in result["gan"]} == {("cpu", 32), ("paper", 32)}
    precisions = {"fp32", "bf16"} if native_bf16() else {"fp32"}
    assert ({(g["arch"], g["precision"]) for g in result["gan"]}
            == {(a, p) for a in ("cpu", "paper") for p in precisions})
    for row in result["gan"]:
        assert row["flops_per_iteration"] > 0 and row["achieved_gflops"] > 0 and row["peak_rss_mib"] > 0
        assert row["matmul_gflops_beside"] > 0
        assert ((row["convolutions_alone_gflops"] > 0) if row["precision"] == "fp32"
                else "convolutions_alone_gflops" not in row)
        assert len(row["seconds_per_iteration"]["all"]) == 2
    assert [(b["arch"], b["omp_wait_policy"]) for b in result["gan_busy"]] == [
        ("cpu", "PASSIVE"), ("cpu", "(OpenMP default)"), ("paper", "PASSIVE"), ("paper", "(OpenMP default)")]
    assert all(b["slowdown"] > 0 for b in result["gan_busy"])
    region = result["gan_region"]
    assert region["size"] == 32 and region["ratio"] == region["lungs"]["median"] / region["full"]["median"] > 0
    assert [c["backbone"] for c in result["classifier"]] == ["resnet18", "efficientnet_lite0"]
    for c in result["classifier"]:
        assert c["train_images_per_s"] > 0 and c["inference_images_per_s"] > 0 and c["gradcam_ms_per_image"] > 0
    assert [c["backbone"] for c in result["layout"]] == ["resnet18", "efficientnet_lite0"]
    assert all(c["train_images_per_s"] > 0 and c["inference_images_per_s"] > 0 for c in result["layout"])
    layout = result["gan_layout"]
    assert layout["ratio"] == layout["channels_last"]["median"] / layout["contiguous"]["median"] > 0
    predict = result["predict"]
    assert predict["files"] == 12 and set(predict["engines"]) == {"onnxruntime", "onnxruntime +cam", "pytorch",
                                                                   "pytorch +cam"}
    assert all(r["images_per_s"] > 0 and r["first_call_seconds"] > 0 for r in predict["engines"].values())
    assert set(result["evaluation"]["engines"]) == {"onnxruntime", "pytorch"}
    assert all(r["seconds"]["median"] > 0 for r in result["evaluation"]["engines"].values())
    for row in ("channels-last / contig.", "predict 12 files 32px, onnxruntime +cam", "run evaluation"):
        assert row in table(result), row
    assert result["data"]["cold"]["images"] == 12 and result["data"]["warm"]["images_per_s"] > 0
    assert result["epoch"]["cached"]["median"] > 0 and result["epoch"]["decoding"]["median"] > 0
    lungs = result["lungs"]
    assert lungs["size"] == 32 and lungs["train_images_per_s"] > 0 and lungs["segment_images_per_s"] > 0
    assert lungs["corpus_minutes"] == pytest.approx(1754 / lungs["segment_images_per_s"] / 60)
    assert "lung U-Net 32px segment" in table(result)
    rows = result["reference"]["rows"]  # ours and the reference, alternating, at the same configurations
    assert ({(r["arch"], r["size"], r["precision"]) for r in rows}
            == {(a, 32, p) for a in ("cpu", "paper") for p in precisions})
    for r in rows:
        assert r["reference_fp32"] == [0.625, 0.625] and len(r["ours"]) == 2  # the stand-in's median, twice
        assert r["speedup"] == pytest.approx(0.625 / (sum(r["ours"]) / 2))
