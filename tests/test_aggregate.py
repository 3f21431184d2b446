"""Tests for pipeline.measure.aggregate: bootstrap CI, exclusion accounting, Markdown table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.measure import aggregate as A
from pipeline.measure.aggregate import bootstrap_ci, summarize, to_markdown

SUMMARY_COLUMNS = [
    "dataset",
    "task",
    "kernel",
    "method",
    "metric",
    "n",
    "n_excluded",
    "excluded_reasons",
    "alignment",
    "mean",
    "median",
    "std",
    "ci_low",
    "ci_high",
]


def _loop_bootstrap(values: np.ndarray, n_boot: int, confidence: float, seed: int):
    """One resample at a time from the same generator stream."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(values), size=len(values))
        means.append(float(np.mean(values[idx])))
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


# ---------------------------------------------------------------- bootstrap_ci


def test_bootstrap_ci_contains_mean_and_is_ordered() -> None:
    values = np.random.default_rng(0).normal(30.0, 2.0, size=200)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    # Roughly mean +- 1.96 * s / sqrt(n) for a normal sample.
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert high - low == pytest.approx(2 * half, rel=0.2)


def test_bootstrap_ci_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(0.0, 1.0, size=20)
    large = rng.normal(0.0, 1.0, size=2000)
    width_small = np.subtract(*bootstrap_ci(small)[::-1])
    width_large = np.subtract(*bootstrap_ci(large)[::-1])
    # Width scales like 1/sqrt(n): expect a ratio near 10.
    assert 5 < width_small / width_large < 20


def test_bootstrap_ci_wider_at_higher_confidence() -> None:
    values = np.random.default_rng(2).exponential(size=50)
    low90, high90 = bootstrap_ci(values, confidence=0.90)
    low99, high99 = bootstrap_ci(values, confidence=0.99)
    assert low99 < low90 < high90 < high99


def test_bootstrap_ci_reproducible_with_seed() -> None:
    values = np.random.default_rng(3).normal(size=40)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


@pytest.mark.parametrize(
    ("n", "n_boot", "confidence", "seed"), [(5, 200, 0.95, 0), (37, 500, 0.9, 4)]
)
def test_bootstrap_ci_matches_loop(n: int, n_boot: int, confidence: float, seed: int) -> None:
    values = np.random.default_rng(100 + n).normal(size=n)
    expected = _loop_bootstrap(values, n_boot, confidence, seed)
    got = bootstrap_ci(values, n_boot=n_boot, confidence=confidence, seed=seed)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_bootstrap_ci_chunking_does_not_change_result(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(9).normal(size=30)
    whole = bootstrap_ci(values, n_boot=300, seed=5)
    monkeypatch.setattr(A, "_BOOT_CHUNK_ELEMENTS", 30 * 7)  # 7 resamples per chunk
    assert bootstrap_ci(values, n_boot=300, seed=5) == pytest.approx(whole, abs=1e-12)


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci(np.array([3.5])) == (3.5, 3.5)
    low, high = bootstrap_ci(np.array([]))
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.array([1.0, 2.0]), confidence=1.5)
    # All resamples of a constant sample have the same mean.
    assert bootstrap_ci(np.full(10, 2.0)) == (2.0, 2.0)


# ---------------------------------------------------------------- summarize


def _frame() -> pd.DataFrame:
    rows = [
        # dataset, task, kernel, method, status, psnr, ssim
        ("ffhq", "sr4", "bicubic", "b_method", "ok", 30.0, 0.90),
        ("ffhq", "sr4", "bicubic", "b_method", "ok", 32.0, 0.80),
        ("ffhq", "sr4", "bicubic", "b_method", "no_face", np.nan, 0.70),
        ("ffhq", "sr4", "bicubic", "b_method", "no_face", 99.0, 0.70),
        ("ffhq", "sr4", "bicubic", "b_method", "decode_error", np.nan, np.nan),
        ("ffhq", "sr4", "bicubic", "a_method", "ok", np.inf, 1.00),
        ("ffhq", "sr4", "bicubic", "a_method", "ok", 28.0, np.nan),
        ("ffhq", "sr4", "bicubic", "a_method", "ok", 26.0, 0.60),
        ("ffhq", "sr4", "bicubic", "a_method", "ok", 27.0, 0.50),
        ("celeba_hq", "denoise", None, "a_method", "ok", 20.0, 0.40),
        ("celeba_hq", "denoise", None, "a_method", None, 21.0, 0.41),
        ("celeba_hq", "sr4", "bicubic", "a_method", "no_face", 22.0, 0.3),
    ]
    cols = ["dataset", "task", "kernel", "method", "status", "psnr", "ssim"]
    return pd.DataFrame(rows, columns=cols)


def test_summarize_columns_and_row_order() -> None:
    summary = summarize(_frame(), ["psnr", "ssim"], n_boot=200)
    assert list(summary.columns) == SUMMARY_COLUMNS
    keys = list(
        summary[["dataset", "task", "kernel", "method", "metric"]]
        .astype(object)
        .where(summary[["dataset", "task", "kernel", "method", "metric"]].notna(), None)
        .itertuples(index=False, name=None)
    )
    assert keys == [
        ("celeba_hq", "denoise", None, "a_method", "psnr"),
        ("celeba_hq", "denoise", None, "a_method", "ssim"),
        ("celeba_hq", "sr4", "bicubic", "a_method", "psnr"),
        ("celeba_hq", "sr4", "bicubic", "a_method", "ssim"),
        ("ffhq", "sr4", "bicubic", "a_method", "psnr"),
        ("ffhq", "sr4", "bicubic", "a_method", "ssim"),
        ("ffhq", "sr4", "bicubic", "b_method", "psnr"),
        ("ffhq", "sr4", "bicubic", "b_method", "ssim"),
    ]
    # Metric order follows the argument, not the alphabet.
    reordered = summarize(_frame(), ["ssim", "psnr"], n_boot=50)
    assert list(reordered["metric"][:2]) == ["ssim", "psnr"]
    assert summary["n"].dtype == np.int64
    assert summary["n_excluded"].dtype == np.int64


def _row(summary: pd.DataFrame, dataset: str, method: str, metric: str, task: str = "sr4"):
    sel = summary[
        (summary["dataset"] == dataset)
        & (summary["task"] == task)
        & (summary["method"] == method)
        & (summary["metric"] == metric)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


def test_summarize_counts_exclusions_and_reasons() -> None:
    summary = summarize(_frame(), ["psnr", "ssim"], n_boot=200)

    b_psnr = _row(summary, "ffhq", "b_method", "psnr")
    assert (b_psnr["n"], b_psnr["n_excluded"]) == (2, 3)
    # Status takes precedence: a no_face row is counted as no_face even with a NaN value.
    assert b_psnr["excluded_reasons"] == "no_face:2;decode_error:1"
    assert b_psnr["mean"] == pytest.approx(31.0)
    assert b_psnr["median"] == pytest.approx(31.0)
    assert b_psnr["std"] == pytest.approx(math.sqrt(2.0))

    a_psnr = _row(summary, "ffhq", "a_method", "psnr")
    assert (a_psnr["n"], a_psnr["n_excluded"]) == (3, 1)
    assert a_psnr["excluded_reasons"] == "inf_psnr:1"
    assert a_psnr["mean"] == pytest.approx(27.0)
    assert a_psnr["std"] == pytest.approx(1.0)
    assert (a_psnr["ci_low"], a_psnr["ci_high"]) == bootstrap_ci(
        np.array([26.0, 27.0, 28.0]), n_boot=200
    )

    a_ssim = _row(summary, "ffhq", "a_method", "ssim")
    assert (a_ssim["n"], a_ssim["n_excluded"]) == (3, 1)
    assert a_ssim["excluded_reasons"] == "nan_ssim:1"
    assert a_ssim["mean"] == pytest.approx(0.7)

    denoise = _row(summary, "celeba_hq", "a_method", "psnr", task="denoise")
    assert pd.isna(denoise["kernel"])
    assert (denoise["n"], denoise["n_excluded"]) == (1, 1)
    assert denoise["excluded_reasons"] == "status_missing:1"
    assert (denoise["ci_low"], denoise["ci_high"]) == (20.0, 20.0)
    assert math.isnan(denoise["std"])

    # A group whose rows are all excluded still reports its exclusions.
    empty = _row(summary, "celeba_hq", "a_method", "ssim")
    assert (empty["n"], empty["n_excluded"]) == (0, 1)
    assert empty["excluded_reasons"] == "no_face:1"
    assert all(math.isnan(empty[c]) for c in ("mean", "median", "std", "ci_low", "ci_high"))

    # Every row of a group is either used or excluded, for every metric.
    sizes = _frame().groupby(["dataset", "task", "kernel", "method"], dropna=False).size()
    for metric in ("psnr", "ssim"):
        part = summary[summary["metric"] == metric]
        assert list(part["n"] + part["n_excluded"]) == list(sizes)


def test_summarize_ignores_input_row_order() -> None:
    values = np.random.default_rng(4).normal(25.0, 3.0, size=(40, 2))
    extra = pd.DataFrame(
        {
            "dataset": "ffhq",
            "task": "sr4",
            "kernel": "bicubic",
            "method": "c_method",
            "status": "ok",
            "psnr": values[:, 0],
            "ssim": values[:, 1] / 100,
        }
    )
    frame = pd.concat([_frame(), extra], ignore_index=True)
    shuffled = frame.sample(frac=1.0, random_state=3)
    shuffled.index = np.arange(len(shuffled))[::-1]
    pd.testing.assert_frame_equal(
        summarize(frame, ["psnr", "ssim"], n_boot=300),
        summarize(shuffled, ["psnr", "ssim"], n_boot=300),
    )


def test_summarize_without_status_and_custom_groups() -> None:
    frame = _frame().drop(columns="status")
    summary = summarize(frame, ["psnr"], group_cols=["method"], n_boot=50)
    assert list(summary.columns[:2]) == ["method", "metric"]
    assert list(summary["method"]) == ["a_method", "b_method"]
    a = summary.iloc[0]
    # Without a status column every row counts: 7 rows, of which only the inf is left out.
    assert (a["n"], a["n_excluded"], a["excluded_reasons"]) == (6, 1, "inf_psnr:1")


def test_summarize_rejects_missing_columns() -> None:
    with pytest.raises(ValueError, match="lpips"):
        summarize(_frame(), ["psnr", "lpips"])
    with pytest.raises(ValueError, match="scale"):
        summarize(_frame(), ["psnr"], group_cols=["dataset", "scale"])


def test_summarize_empty_frame() -> None:
    summary = summarize(_frame().iloc[0:0], ["psnr"])
    assert summary.empty
    assert list(summary.columns) == SUMMARY_COLUMNS


# ---------------------------------------------------------------- to_markdown


def test_to_markdown_table() -> None:
    summary = summarize(_frame(), ["psnr", "ssim"], n_boot=200)
    text = to_markdown(summary)
    lines = text.strip().split("\n")
    assert lines[0] == "| dataset | task | kernel | method | n | alignment | psnr | ssim |"
    assert lines[1] == "|---|---|---|---|---:|---|---:|---:|"
    assert len(lines) == 2 + 4  # one row per group
    body = [lines[0], *lines[2:]]
    assert all(line.startswith("| ") and line.endswith(" |") for line in body)
    assert all(line.count("|") == lines[0].count("|") for line in lines)

    ffhq_b = next(line for line in lines if "b_method" in line)
    b = _row(summary, "ffhq", "b_method", "psnr")
    half = (b["ci_high"] - b["ci_low"]) / 2
    assert f"| 31 ± {half:.2g} |" in ffhq_b
    ffhq_a = next(line for line in lines if "ffhq" in line and "a_method" in line)
    assert ffhq_a.startswith("| ffhq | sr4 | bicubic | a_method | 3 | - |")
    # Missing kernel (and, in a table without alignments, the alignment) prints as a
    # dash; a metric with no values as n/a.
    assert "| celeba_hq | denoise | - | a_method | 1 | - | 20 | 0.4 |" in lines
    assert "| celeba_hq | sr4 | bicubic | a_method | 0 | - | n/a | n/a |" in lines


def test_to_markdown_marks_differing_n_and_escapes_pipes() -> None:
    frame = pd.DataFrame(
        {
            "method": ["x|y"] * 3,
            "status": ["ok"] * 3,
            "psnr": [30.0, 31.0, 32.0],
            "ssim": [0.5, np.nan, 0.7],
        }
    )
    text = to_markdown(summarize(frame, ["psnr", "ssim"], group_cols=["method"], n_boot=50))
    row = text.strip().split("\n")[2]
    assert row.startswith("| x\\|y | 3 | - | 31 ± ")
    assert "(n=2)" in row
    with pytest.raises(ValueError, match="summarize"):
        to_markdown(pd.DataFrame({"a": [1]}))


# ---------------------------------------------------------------- alignments


def _framed() -> pd.DataFrame:
    """One group: 3 aligned faces, 2 centre crops, 1 prealigned, 1 left out (no_face)."""
    rows = [
        # status, alignment, psnr, identity
        ("ok", "aligned", 30.0, 0.30),
        ("ok", "aligned", 31.0, 0.40),
        ("ok", "aligned", 32.0, np.nan),
        ("ok", "centre_crop", 20.0, np.nan),
        ("ok", "centre_crop", 22.0, 0.9),  # a value is ignored: no face to compare
        ("ok", "prealigned", 25.0, 0.50),
        ("no_face", None, np.nan, np.nan),
    ]
    frame = pd.DataFrame(rows, columns=["status", "alignment", "psnr", "identity"])
    return frame.assign(method="m")


def test_centre_crops_are_scored_except_in_face_metrics() -> None:
    summary = summarize(
        _framed(), ["psnr", "identity"], group_cols=["method"], n_boot=50,
        face_metrics=("identity",),
    )  # fmt: skip
    psnr, identity = (summary[summary["metric"] == m].iloc[0] for m in ("psnr", "identity"))
    # The ground truth is all PSNR needs: centre crops count, the skipped image does not.
    assert (psnr["n"], psnr["n_excluded"]) == (6, 1)
    assert psnr["excluded_reasons"] == "no_face:1"
    assert psnr["mean"] == pytest.approx(np.mean([30, 31, 32, 20, 22, 25]))
    assert psnr["alignment"] == "aligned:3;prealigned:1;centre_crop:2"
    # Identity leaves both centre crops out under their own reason, whatever their value.
    assert (identity["n"], identity["n_excluded"]) == (3, 4)
    assert identity["excluded_reasons"] == "centre_crop:2;nan_identity:1;no_face:1"
    assert identity["mean"] == pytest.approx(0.4)
    assert identity["alignment"] == "aligned:2;prealigned:1;centre_crop:0"


def test_without_face_metrics_centre_crops_count_everywhere() -> None:
    summary = summarize(_framed(), ["identity"], group_cols=["method"], n_boot=50)
    row = summary.iloc[0]
    assert (row["n"], row["excluded_reasons"]) == (4, "nan_identity:2;no_face:1")
    assert row["alignment"] == "aligned:2;prealigned:1;centre_crop:1"


def test_alignment_counts_name_unknown_values_and_are_empty_without_the_column() -> None:
    frame = _framed()
    frame.loc[0, "alignment"] = None
    frame.loc[1, "alignment"] = "other"
    row = summarize(frame, ["psnr"], group_cols=["method"], n_boot=50).iloc[0]
    assert row["alignment"] == "aligned:1;prealigned:1;centre_crop:2;other:1;unknown:1"
    bare = summarize(_frame(), ["psnr"], n_boot=50)
    assert (bare["alignment"] == "").all()


def test_to_markdown_shows_the_alignments_of_the_widest_metric() -> None:
    summary = summarize(
        _framed(), ["identity", "psnr"], group_cols=["method"], n_boot=50,
        face_metrics=("identity",),
    )  # fmt: skip
    row = to_markdown(summary).strip().split("\n")[2]
    assert row.startswith("| m | 6 | aligned:3;prealigned:1;centre_crop:2 | ")
    assert "(n=3)" in row
