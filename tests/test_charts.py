"""Static SVG charts of the report (pipeline.report.charts) on small synthetic tables."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest

from pipeline.measure.aggregate import summarize
from pipeline.report.charts import Chart, make_charts, method_styles

SVG = "{http://www.w3.org/2000/svg}"
DATASETS = ("celeba_hq", "ffhq")
TASKS = {"16to128": 8, "32to128": 4}  # task -> crop_border
SEEDS = {"bicubic": (0,), "esrgan": (0,), "pulse": (0, 1, 2)}
IMAGES = 5
PER_GROUP = ("psnr", "lpips", "plane", "lr-consistency", "identity", "seed-spread")
METRICS = ("psnr_rgb", "psnr_y", "ssim_y", "lr_psnr", "lpips_alex", "identity_distance")
# The image whose PULSE outputs disagree most across seeds, in every group.
SPREAD_IMAGE = "img3"


def _per_image(methods=tuple(SEEDS), datasets=DATASETS) -> pd.DataFrame:
    """Per-image rows whose winners differ by group, so that alt texts must be computed."""
    rng = np.random.default_rng(7)
    base_psnr = {"bicubic": 24.0, "esrgan": 25.0, "pulse": 20.0}
    base_lpips = {"bicubic": 0.45, "esrgan": 0.25, "pulse": 0.20}
    rows = []
    for dataset in datasets:
        for task, crop in TASKS.items():
            for method in methods:
                # ffhq 32to128: bicubic takes the lead on PSNR, esrgan on LPIPS.
                flip = dataset == "ffhq" and task == "32to128"
                for i in range(IMAGES):
                    for seed in SEEDS[method]:
                        noisy = method == "pulse" and f"img{i}" == SPREAD_IMAGE
                        psnr = base_psnr[method] + (3.0 if flip and method == "bicubic" else 0.0)
                        lpips = base_lpips[method] - (0.1 if flip and method == "esrgan" else 0.0)
                        lpips += rng.normal(0, 0.08 if noisy else 0.01)
                        rows.append(
                            {
                                "dataset": dataset,
                                "task": task,
                                "kernel": "pil-bicubic",
                                "method": method,
                                "image_id": f"img{i}",
                                "seed": seed,
                                "status": "ok",
                                "crop_border": crop,
                                "psnr_rgb": psnr - 1.0 + rng.normal(0, 0.3),
                                "psnr_y": psnr + rng.normal(0, 0.3),
                                "ssim_y": 0.7 + rng.normal(0, 0.02),
                                "lr_psnr": 35.0 - 5.0 * (method == "pulse") + rng.normal(0, 0.3),
                                "lpips_alex": lpips,
                                # No face found in every other output of image 1.
                                "identity_distance": np.nan
                                if i == 1
                                else 0.5 + rng.normal(0, 0.05),
                                "converged": (seed != 2) if method == "pulse" else None,
                            }
                        )
    frame = pd.DataFrame(rows)
    # A row left out by status: its wild LPIPS must not reach any chart.
    pulse = frame.index[frame["method"] == "pulse"]
    if len(pulse):
        frame.loc[pulse[0], ["status", "lpips_alex"]] = ["no_face", 5.0]
    return frame


def _summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """The evaluation stage's summary: category 'all', PSNR/SSIM names with their crop."""
    metrics = [m for m in METRICS if m in per_image.columns]
    summary = summarize(per_image, metrics, n_boot=100, seed=0)
    summary.insert(4, "category", "all")
    crops = per_image.groupby("task")["crop_border"].first().to_dict()
    summary["metric"] = [
        f"{m}_crop{crops[t]}" if m.startswith(("psnr_", "ssim_")) else m
        for m, t in zip(summary["metric"], summary["task"], strict=True)
    ]
    summary["seed_std"] = np.nan
    summary["convention"] = "test convention"
    return summary


def _svg_root(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    per_image = _per_image()
    return per_image, _summary(per_image)


@pytest.fixture(scope="module")
def rendered(tables, tmp_path_factory) -> tuple[Path, list[Chart]]:
    out = tmp_path_factory.mktemp("report")
    return out, make_charts(*tables, out)


def test_every_expected_chart_is_written_as_valid_svg(rendered):
    out, charts = rendered
    groups = [f"{d}-{t}-pil-bicubic" for d in DATASETS for t in TASKS]
    expected = ["overview-psnr", "overview-lpips"] + [f"{g}-{k}" for g in groups for k in PER_GROUP]
    assert [c.id for c in charts] == [f"chart-{slug}" for slug in expected]
    assert [c.path for c in charts] == [f"charts/{slug}.svg" for slug in expected]
    assert sorted(p.name for p in (out / "charts").iterdir()) == sorted(
        f"{s}.svg" for s in expected
    )
    for chart in charts:
        root = _svg_root(out / chart.path)
        # Self-describing: the root <title> is the chart's title.
        assert root.find(f"{SVG}title").text == chart.title
        # Text stays text, and no timestamp is written.
        assert any(True for _ in root.iter(f"{SVG}text"))
        assert "dc:date" not in (out / chart.path).read_text()
        assert chart.caption and chart.alt
    assert {c.key for c in charts} == {"overview"} | {
        f"{d}/{t}/pil-bicubic" for d in DATASETS for t in TASKS
    }


def test_ids_are_unique_and_html_safe(rendered):
    _, charts = rendered
    ids = [c.id for c in charts]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i) for i in ids)


def _best(summary: pd.DataFrame, key: str, metric_prefix: str, higher: bool) -> str:
    dataset, task, kernel = key.split("/")
    rows = summary[
        (summary["dataset"] == dataset)
        & (summary["task"] == task)
        & (summary["kernel"] == kernel)
        & summary["metric"].str.startswith(metric_prefix)
    ]
    ordered = rows.sort_values("mean", ascending=not higher)
    return ordered.iloc[0]["method"]


def test_alt_texts_name_the_best_method_from_the_data(rendered, tables):
    _, charts = rendered
    _, summary = tables
    winners = set()
    for chart in charts:
        if chart.id.endswith("-psnr") and chart.key != "overview":
            best = _best(summary, chart.key, "psnr_y_crop", higher=True)
            assert f"Best (higher is better): {best} at " in chart.alt
            winners.add(best)
        if chart.id.endswith("-lpips") and chart.key != "overview":
            best = _best(summary, chart.key, "lpips_alex", higher=False)
            assert f"Best (lower is better): {best} at " in chart.alt
        if chart.id.endswith("-plane"):
            best = _best(summary, chart.key, "lpips_alex", higher=False)
            assert f"Lowest LPIPS: {best} (" in chart.alt
    # The synthetic data has two different PSNR winners; a constant alt text would fail.
    assert winners == {"bicubic", "esrgan"}
    overview = next(c for c in charts if c.id == "chart-overview-psnr")
    assert "esrgan in 3, bicubic in 1" in overview.alt


def test_spread_chart_reports_the_stochastic_method_and_its_least_stable_image(rendered):
    _, charts = rendered
    spread = [c for c in charts if c.id.endswith("-seed-spread")]
    assert len(spread) == len(DATASETS) * len(TASKS)
    for chart in spread:
        # Only PULSE has several seeds; deterministic methods are not drawn.
        assert "stochastic method pulse," in chart.alt
        assert "bicubic:" not in chart.alt and "esrgan" not in chart.alt
        assert f"(image {SPREAD_IMAGE})" in chart.alt
        # The excluded row's LPIPS of 5.0 would make a spread near 2.9.
        largest = float(re.search(r"largest ([0-9.]+)", chart.alt)[1])
        assert largest < 0.5
        assert "lpips_alex" in chart.caption
        # Seed 2 never converges; in the first group one converged run is not ok.
        first = chart.key == "celeba_hq/16to128/pil-bicubic"
        counts = "9 of 14" if first else "10 of 15"
        assert f"pulse: {counts} runs converged" in chart.caption


def test_captions_state_conventions_and_n(rendered):
    _, charts = rendered
    psnr = next(c for c in charts if c.id == "chart-celeba_hq-16to128-pil-bicubic-psnr")
    assert "psnr_y_crop8" in psnr.caption
    assert "bootstrap 95 % confidence interval" in psnr.caption
    assert "bicubic 5" in psnr.caption and "pulse 14" in psnr.caption
    identity = next(c for c in charts if c.id == "chart-celeba_hq-16to128-pil-bicubic-identity")
    # Image 1 has no face: its outputs are left out and said to be.
    assert "Left out" in identity.caption and "bicubic 1" in identity.caption


def test_same_inputs_give_byte_identical_files_and_leave_rcparams_alone(tmp_path):
    # One data set (two tasks, so the overview is included) keeps the test quick.
    per_image = _per_image(datasets=("ffhq",))
    summary = _summary(per_image)
    before = dict(mpl.rcParams)
    first = make_charts(per_image, summary, tmp_path / "a")
    second = make_charts(per_image, summary, tmp_path / "b")
    assert dict(mpl.rcParams) == before
    assert first == second
    assert any(c.key == "overview" for c in first)
    for chart in first:
        assert (tmp_path / "a" / chart.path).read_bytes() == (
            tmp_path / "b" / chart.path
        ).read_bytes()


def test_without_lpips_there_are_no_lpips_or_plane_charts(tmp_path):
    per_image = _per_image(datasets=("ffhq",)).drop(columns=["lpips_alex"])
    per_image = per_image[per_image["task"] == "16to128"]
    charts = make_charts(per_image, _summary(per_image), tmp_path)
    kinds = [c.id.removeprefix("chart-ffhq-16to128-pil-bicubic-") for c in charts]
    assert kinds == ["psnr", "lr-consistency", "identity", "seed-spread"]
    spread = next(c for c in charts if c.id.endswith("-seed-spread"))
    # The spread falls back to PSNR on Y.
    assert "psnr_y" in spread.caption
    for chart in charts:
        _svg_root(tmp_path / chart.path)


def test_one_method_and_a_nan_only_metric(tmp_path):
    per_image = _per_image(methods=("bicubic",), datasets=("ffhq",))
    per_image = per_image[per_image["task"] == "16to128"].copy()
    per_image["identity_distance"] = np.nan
    charts = make_charts(per_image, _summary(per_image), tmp_path)
    kinds = [c.id.removeprefix("chart-ffhq-16to128-pil-bicubic-") for c in charts]
    # No plane with a single point, no identity chart without values, no spread without seeds.
    assert kinds == ["psnr", "lpips", "lr-consistency"]
    psnr = charts[0]
    assert "Only method: bicubic at " in psnr.alt
    for chart in charts:
        _svg_root(tmp_path / chart.path)


def test_one_group_has_no_overview_and_empty_tables_give_no_charts(tmp_path):
    per_image = _per_image(datasets=("ffhq",))
    per_image = per_image[per_image["task"] == "16to128"]
    charts = make_charts(per_image, _summary(per_image), tmp_path / "one")
    assert charts and all(c.key == "ffhq/16to128/pil-bicubic" for c in charts)
    empty = _summary(per_image).iloc[0:0]
    assert make_charts(per_image.iloc[0:0], empty, tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_summary_without_required_columns_is_refused(tables, tmp_path):
    per_image, summary = tables
    with pytest.raises(ValueError, match=r"summary table lacks columns \['ci_low'\]"):
        make_charts(per_image, summary.drop(columns=["ci_low"]), tmp_path)


def test_method_styles_are_stable_and_distinct():
    names = [f"m{i:02d}" for i in range(42)]
    styles = method_styles(names)
    assert method_styles(reversed(names)) == styles
    assert len(set(styles.values())) == len(names)
    assert method_styles(["b", "a"])["a"] == method_styles(["a"])["a"]
    # Okabe-Ito's pale yellow is never used.
    assert all(colour != "#f0e442" for colour, _ in styles.values())
