"""benchmarks/gpu_suite.py at its CI size: every section runs, its JSON holds positive figures."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_suite  # noqa: E402


def rates(figure: dict) -> list[float]:
    return [value for key, value in figure.items() if key.endswith("_per_second")]


def test_quick_cpu_suite_writes_every_section(tmp_path, torch_one_thread):
    out = tmp_path / "suite.json"
    # A budget no section reaches: on a busy machine nothing may be left out.
    gpu_suite.main(["--device", "cpu", "--quick", "--budget-seconds", "3600", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["quick"] is True
    assert report["cuda_facts"] is None and report["seconds_total"] > 0 and report["complete"]

    upscale = report["upscale"]
    assert upscale["skipped"] == []
    assert all(text.startswith("quick: random weights") for text in upscale["weights"].values())
    seen = {
        (f["network"], f["task"], f["memory_format"], f["batch_size"]) for f in upscale["figures"]
    }
    for network in ("msrresnet", "rrdbnet"):
        for task in ("16->128", "32->128"):
            for layout in ("nchw", "channels_last"):
                assert {(network, task, layout, 1), (network, task, layout, 2)} <= seen
    assert {("bicubic", "32->128", None, 2)} <= seen
    # On the CPU the runtime has fp32 only.
    assert {f["precision"] for f in upscale["figures"] if f["network"] != "bicubic"} == {"fp32"}
    for figure in upscale["figures"]:
        expected = 1 if figure["network"] == "bicubic" else 2
        assert len(rates(figure)) == expected and min(rates(figure)) > 0, figure

    pulse = report["pulse"]
    assert pulse["network"].startswith("quick:") and pulse["skipped"] == []
    runs = [(f["batch_size"], f["precision"]) for f in pulse["figures"]]
    assert runs == [(1, "fp32"), (2, "fp32")]
    assert all(f["items_per_second"] > 0 and f["steps"] == pulse["steps"] for f in pulse["figures"])

    assert [f["batch_size"] for f in report["lpips"]["figures"]] == [4]
    assert report["lpips"]["figures"][0]["images_per_second"] > 0

    identity = report["identity"]
    if identity.get("figures"):
        assert identity["figures"][0]["images_per_second"] > 0
    else:  # no dlib or no model files here: the section says why
        assert identity["skipped"][0]["reason"]
    training = report["training"]
    # Every face recipe's model, once (the budget leaves nothing out, as above).
    assert training["skipped"] == []
    assert {f["recipe"] for f in training["figures"]} == {
        "celebahq_srresnet",
        "celebahq_srresnet16",
        "celebahq_srgan",
        "celebahq_srgan_wgangp",
    }
    for figure in training["figures"]:
        assert figure["precision"] == "fp32" and figure["task"] == "4->16", figure
        assert figure["images_per_second"] > 0 and figure["projected_hours"] > 0, figure
    losses = {f["recipe"]: (f["loss"], f["adversarial"]) for f in training["figures"]}
    assert losses["celebahq_srgan_wgangp"] == ("vgg", "wgan-gp")
    assert training["vgg_weights"] == "random weights of torchvision's VGG19"
    for name in gpu_suite.SECTIONS:
        assert report[name]["seconds"] >= 0 and report[name]["cpu_seconds"] >= 0


def test_a_measurement_past_its_deadline_is_listed_as_skipped():
    section = gpu_suite.Section(deadline=time.perf_counter() + 60)
    assert section.open({"batch_size": 1})
    assert not section.open({"batch_size": 64}, needs=120)
    past = gpu_suite.Section(deadline=time.perf_counter() - 1)
    assert not past.open({"batch_size": 2})
    assert section.skipped[0]["batch_size"] == 64
    assert "about 120.0 s needed" in section.skipped[0]["reason"]
    assert past.skipped[0]["reason"].startswith("time budget: 0.0 s left")


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def boom(settings, section):
        raise RuntimeError("no such kernel")

    def fine(settings, section):
        return {"figures": [{"images_per_second": 1.0}], "skipped": section.skipped}

    monkeypatch.setattr(gpu_suite, "SECTIONS", {"lpips": boom, "identity": fine})
    out = tmp_path / "suite.json"
    gpu_suite.main(["--device", "cpu", "--sections", "lpips", "identity", "--out", str(out)])
    report = json.loads(out.read_text())
    assert "RuntimeError: no such kernel" in report["lpips"]["failed"]
    assert report["identity"]["figures"] and report["complete"]
