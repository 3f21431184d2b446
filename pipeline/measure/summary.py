"""The summary stage: per-image metrics aggregated per data set, task, kernel, method, category."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.io import write_csv, write_text
from pipeline.measure.aggregate import summarize as summarize_frame
from pipeline.measure.aggregate import to_markdown
from pipeline.measure.catalogue import METRICS, face_metrics, summary_name
from pipeline.vocabulary import ALL_IMAGES, GROUP_COLUMNS, OK


def summarize(
    per_image_path: Path,
    n_boot: int,
    seed: int,
    out_csv: Path,
    out_md: Path,
    manifests: Sequence[Path] = (),
) -> pd.DataFrame:
    """Aggregate per-image metrics: mean, median, bootstrap 95% CI, counts left out.

    Rows: every data set x task x kernel x method x metric, over all images
    (``category == "all"``) and over each category of the manifests (an image
    counts in every category it has). Seeds are pooled; ``seed_std`` is the
    mean over images of the spread across seeds (NaN for one seed). PSNR and
    SSIM names carry their crop (``psnr_y_crop8``), and ``convention`` says
    how every metric was computed. Centre crops count in every metric but
    those that need a face (``excluded_reasons``: ``centre_crop``), and
    ``alignment`` says which alignments each row's values come from.
    """
    per_image = pd.read_parquet(per_image_path)
    metrics = [name for name in METRICS if name in per_image.columns]
    groups = list(GROUP_COLUMNS)
    options = {"n_boot": n_boot, "seed": seed, "face_metrics": face_metrics()}
    overall = summarize_frame(per_image, metrics, group_cols=groups, **options)
    overall.insert(len(groups), "category", ALL_IMAGES)
    parts = [overall]
    categories = _categories(manifests)
    if len(categories):
        tagged = per_image.merge(categories, on=["dataset", "image_id"], how="inner")
        tagged = tagged.explode("category").dropna(subset=["category"])
        if len(tagged):
            parts.append(
                summarize_frame(tagged, metrics, group_cols=[*groups, "category"], **options)
            )
    summary = pd.concat(parts, ignore_index=True)
    summary = summary.merge(
        _seed_spread(per_image, metrics, groups), how="left", on=[*groups, "metric"]
    )
    crops = per_image.groupby("task")["crop_border"].first().to_dict()
    summary["convention"] = [str(METRICS[m]) for m in summary["metric"]]
    summary["metric"] = [
        summary_name(m, crops.get(t, 0))
        for m, t in zip(summary["metric"], summary["task"], strict=True)
    ]
    write_csv(out_csv, summary)
    overall = summary[summary["category"] == ALL_IMAGES]
    write_text(out_md, to_markdown(overall.drop(columns=["category", "seed_std", "convention"])))
    return summary


def _categories(manifests: Sequence[Path]) -> pd.DataFrame:
    """(dataset, image_id, category list) of every manifest; the data set is its folder's name."""
    frames = []
    for path in manifests:
        manifest = pd.read_parquet(path, columns=["image_id", "categories"])
        manifest["dataset"] = Path(path).parent.name
        frames.append(manifest.rename(columns={"categories": "category"}))
    if not frames:
        return pd.DataFrame(columns=["dataset", "image_id", "category"])
    return pd.concat(frames, ignore_index=True)


def _seed_spread(
    per_image: pd.DataFrame, metrics: Sequence[str], groups: list[str]
) -> pd.DataFrame:
    """Mean over images of the standard deviation across seeds, per group and metric.

    With one seed every per-image deviation is NaN, and so is the mean.
    """
    ok = per_image[per_image["status"] == OK]
    per_image_std = ok.groupby([*groups, "image_id"], dropna=False)[list(metrics)].std(ddof=1)
    spread = per_image_std.groupby(level=groups, dropna=False).mean().reset_index()
    return spread.melt(id_vars=groups, var_name="metric", value_name="seed_std")
