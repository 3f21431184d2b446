"""The real workflow, end to end, on a tiny offline data set (CPU, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake
from PIL import Image

from pipeline.report import category_label

pytestmark = pytest.mark.slow


def tasks_of(config: dict, dataset: str) -> list[dict]:
    """A data set's own tasks, else the global ones."""
    return config["datasets"][dataset].get("tasks", config["tasks"])


def config_of(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def test_manifests_keep_every_source_image_with_status(finished_run):
    workdir, _ = finished_run
    expected = yaml.safe_load((workdir / "expected_status.yaml").read_text())
    manifest = pd.read_parquet(workdir / "results/folder/manifest.parquet")
    for column in ("image_id", "path", "sha256", "width", "height", "subject", "split",
                   "categories", "status", "reason"):  # fmt: skip
        assert column in manifest.columns, column
    assert dict(zip(manifest["image_id"], manifest["status"], strict=True)) == expected
    broken = manifest.set_index("image_id").loc[["empty", "truncated"]]
    assert broken["reason"].str.len().gt(0).all()
    assert (manifest.loc[manifest["status"] == "ok", "width"] > 0).all()
    zipped = pd.read_parquet(workdir / "results/zipped/manifest.parquet")
    assert len(zipped) == 5  # limit: 5, first ids in sorted order
    assert list(zipped["image_id"]) == sorted(expected)[:5]


def test_images_of_every_stage_exist_as_png(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    faces = pd.read_parquet(workdir / "results/folder/faces.parquet")
    usable = faces.loc[faces["status"].isin(["ok", "fallback"]), "image_id"]
    assert len(usable) == (faces["status"] != "error").sum() > 0
    for task in config["tasks"]:
        lr, hr = task["lr"], task["hr"]
        aligned = sorted((workdir / f"results/folder/aligned/{hr}").glob("shard-*/*.png"))
        assert sorted(p.stem for p in aligned) == sorted(usable)
        with Image.open(aligned[0]) as image:
            assert image.size == (hr, hr) and image.mode == "RGB"
        low = sorted(
            (workdir / f"results/folder/lr{lr}/pil-bicubic/from{hr}").glob("shard-*/*.png")
        )
        assert len(low) == len(usable)
        with Image.open(low[0]) as image:
            assert image.size == (lr, lr)
        for method in config["methods"]:
            sr = sorted(
                (workdir / f"results/folder/sr/{method}/pil-bicubic/{lr}to{hr}").glob(
                    "shard-*/*.png"
                )
            )
            assert sorted(p.stem for p in sr) == sorted(f"{i}_s0" for i in usable)
            with Image.open(sr[0]) as image:
                assert image.size == (hr, hr)


def test_faces_table_and_contact_sheets(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    for name in config["datasets"]:
        faces = pd.read_parquet(workdir / f"results/{name}/faces.parquet")
        for column in ("image_id", "status", "reason", "detector", "n_faces", "box_left",
                       "landmarks", "quad", "alignment"):  # fmt: skip
            assert column in faces.columns, (name, column)
        found = faces[faces["status"] == "ok"]
        assert all(len(points) == 136 for points in found["landmarks"])
        assert (faces.loc[faces["status"] == "fallback", "reason"] == "no face detected").all()
        framed = faces["status"].isin(["ok", "fallback"])
        assert faces.loc[framed, "alignment"].isin(["aligned", "prealigned", "centre_crop"]).all()
        assert faces.loc[~framed, "alignment"].isna().all()
        with Image.open(workdir / f"results/{name}/contact_sheet.png") as sheet:
            assert sheet.mode == "RGB" and min(sheet.size) >= 64
    # The real photo among the folder's images is found and aligned; the drawn
    # emoji discs are not faces, so they fall back to a centre crop.
    folder = pd.read_parquet(workdir / "results/folder/faces.parquet").set_index("image_id")
    if "real_0" in folder.index:
        assert folder.loc["real_0", "status"] == "ok"
    emoji = pd.read_parquet(workdir / "results/emoji/faces.parquet")
    assert set(emoji["status"]) <= {"fallback", "missing", "error"}
    assert set(emoji["alignment"].dropna()) == {"centre_crop"}
    if "croppedyale" in config["datasets"]:
        # Pre-aligned crops: all framed by the kind's template; detection only recorded.
        cropped = pd.read_parquet(workdir / "results/croppedyale/faces.parquet")
        assert (cropped["alignment"] == "prealigned").all() and len(cropped) == 4
        assert cropped["n_faces"].notna().all()


def test_per_image_table_has_one_row_per_image_task_method_seed(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    keys = ["dataset", "image_id", "task", "lr_size", "hr_size", "kernel", "method", "seed"]
    assert not per_image.duplicated(keys).any()
    image_tasks = sum(
        len(pd.read_parquet(workdir / f"results/{name}/manifest.parquet"))
        * len(tasks_of(config, name))
        for name in config["datasets"]
    )
    assert len(per_image) == image_tasks * len(config["methods"])
    scored = per_image[per_image["status"] == "ok"]
    assert scored[["psnr_rgb", "psnr_y", "ssim_y", "lr_psnr"]].notna().all().all()
    # Every scored row says how its image was framed; centre crops get no identity.
    assert scored["alignment"].isin(["aligned", "prealigned", "centre_crop"]).all()
    crops = scored[scored["alignment"] == "centre_crop"]
    assert len(crops) and crops["identity_distance"].isna().all()
    assert ((scored["ssim_y"] > 0) & (scored["ssim_y"] <= 1)).all()
    errors = per_image[(per_image["status"] == "error") & (per_image["dataset"] == "folder")]
    assert set(errors["image_id"]) == {"empty", "truncated"}
    assert errors["psnr_y"].isna().all() and errors["reason"].str.len().gt(0).all()
    # crop_border defaults to the scale factor
    assert (per_image["crop_border"] == per_image["hr_size"] // per_image["lr_size"]).all()


def test_metrics_are_recomputable_from_the_written_images(finished_run):
    workdir, _ = finished_run
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    row = per_image[per_image["status"] == "ok"].iloc[0]
    sr = np.asarray(Image.open(workdir / row["sr_path"]), dtype=np.float64)
    hr = np.asarray(Image.open(workdir / row["hr_path"]), dtype=np.float64)
    c = int(row["crop_border"])
    mse = np.mean((sr[c:-c, c:-c] - hr[c:-c, c:-c]) ** 2)
    assert row["psnr_rgb"] == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-9)


def test_arcface_identity_is_scored_beside_dlib_and_summarized(finished_run):
    """ArcFace (random weights in the published layout) scores every framed face, is
    recomputable from the written images, and reaches the summary, tables and charts."""
    from pipeline.measure.arcface import angle_degrees, cosine_similarity, embed, load_arcface

    workdir, _ = finished_run
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    scored = per_image[per_image["status"] == "ok"]
    faces = scored[scored["alignment"] != "centre_crop"]
    angle, cosine = faces["arcface_angle"], faces["arcface_cosine"]
    assert len(faces) and np.isfinite(angle).all() and np.isfinite(cosine).all()
    assert ((angle >= 0) & (angle <= 180)).all() and ((cosine >= -1) & (cosine <= 1)).all()
    np.testing.assert_allclose(np.cos(np.radians(angle)), cosine, atol=1e-9)
    crops = scored[scored["alignment"] == "centre_crop"]
    assert len(crops) and crops[["arcface_angle", "arcface_cosine"]].isna().all().all()
    row = faces.iloc[0]
    network = load_arcface(workdir / "resources/weights/arcface_resnet18.pth")
    sr, hr = (np.asarray(Image.open(workdir / row[key])) for key in ("sr_path", "hr_path"))
    pair = embed(network, np.stack([sr, hr]), batch_size=1)
    assert angle_degrees(pair[:1], pair[1:])[0] == pytest.approx(row["arcface_angle"], abs=1e-3)
    cosine_again = cosine_similarity(pair[:1], pair[1:])[0]
    assert cosine_again == pytest.approx(row["arcface_cosine"], abs=1e-5)

    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    summary = summary[summary["category"] == "all"].set_index(["dataset", "metric"])
    for metric in ("arcface_angle", "arcface_cosine"):
        folder = summary.loc[("folder", metric)]
        assert (folder["n"] > 0).all() and folder["convention"].str.contains("ArcFace").all()
        assert ((folder["ci_low"] <= folder["mean"]) & (folder["mean"] <= folder["ci_high"])).all()
        emoji = summary.loc[("emoji", metric)]  # drawn discs: centre crops, no face
        assert (emoji["n"] == 0).all()
        assert emoji["excluded_reasons"].str.contains(r"\bcentre_crop:[1-9]").all()
    html = (workdir / "reports/tiny/index.html").read_text()
    assert "ArcFace angle" in html and "ArcFace cosine" in html
    assert list((workdir / "reports/tiny/charts").glob("*arcface*.svg"))


def test_summary_and_report(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    categories = summary[summary["category"] != "all"]
    summary = summary[summary["category"] == "all"]
    groups = summary.groupby(["dataset", "task", "kernel", "method"]).size()
    n_tasks = sum(len(tasks_of(config, name)) for name in config["datasets"])
    assert len(groups) == n_tasks * len(config["methods"])
    # PSNR/SSIM names carry their crop: the scale factor (x4 in both tasks) by default.
    assert {"psnr_y_crop4", "ssim_y_crop4"} <= set(summary["metric"])
    assert not {"psnr_y", "ssim_y"} & set(summary["metric"])
    # Every data set is scored in PSNR, the emoji discs (no face: centre crops) too.
    psnr = summary[summary["metric"].str.startswith("psnr_y") & (summary["n"] > 0)]
    assert set(psnr["dataset"]) == set(config["datasets"])
    assert (psnr["ci_low"] <= psnr["mean"]).all() and (psnr["mean"] <= psnr["ci_high"]).all()
    folder = summary[(summary["dataset"] == "folder") & summary["metric"].str.startswith("psnr_y")]
    assert (folder["n_excluded"] >= 2).all()  # the two broken files at least
    assert folder["excluded_reasons"].str.contains("error").all()
    # Identity needs a face: the emoji's centre crops are left out of it, by name.
    identity = summary[summary["metric"] == "identity_distance"].set_index("dataset")
    emoji = identity.loc[["emoji"]]
    assert (emoji["n"] == 0).all()
    assert emoji["excluded_reasons"].str.contains(r"\bcentre_crop:[1-9]").all()
    emoji_psnr = psnr[psnr["dataset"] == "emoji"]
    assert (emoji_psnr["alignment"].str.contains("centre_crop:") & (emoji_psnr["n"] > 0)).all()
    # Every emoji category shows numbers for every image with a ground truth.
    emoji_ok = per_image_ok(workdir, "emoji")
    manifest = pd.read_parquet(workdir / "results/emoji/manifest.parquet")
    members = manifest.explode("categories").groupby("categories")["image_id"].apply(set)
    emoji_cats = categories[
        (categories["dataset"] == "emoji") & categories["metric"].str.startswith("psnr_y")
    ]
    assert (emoji_cats["n"] > 0).any()
    for row in emoji_cats.itertuples():  # a category of unusable emoji only has none
        expected = len(members[row.category] & emoji_ok[(row.task, row.method)])
        assert row.n == expected, (row.category, row.task, row.method)
    if "croppedyale" in config["datasets"]:  # prealigned: every usable image in every metric
        cropped = summary[summary["dataset"] == "croppedyale"]
        assert (cropped["n"] == 4).all(), cropped[["metric", "n", "excluded_reasons"]]
        assert (cropped["alignment"] == "aligned:0;prealigned:4;centre_crop:0").all()
    markdown = (workdir / "results/metrics/summary.md").read_text()
    assert "| alignment |" in markdown and "prealigned:" in markdown
    if "yale" in config["datasets"]:  # the real Yale layout gives categories
        yale = categories[categories["dataset"] == "yale"]
        assert yale["category"].str.startswith("subject:").any()
        overall_n = summary.set_index(["dataset", "task", "method", "metric"])["n"]
        for row in yale.itertuples():
            assert row.n <= overall_n[(row.dataset, row.task, row.method, row.metric)]
    index = workdir / "reports/tiny/index.html"
    html = index.read_text()
    assert "<table" in html and "bicubic" in html and "tiny_trained" in html
    for src in re.findall(r'src="([^"]+)"', html):
        assert (index.parent / src).is_file(), src


def test_the_plan_is_stated_before_the_first_upscale_job(finished_run):
    workdir, _ = finished_run
    plan = (workdir / "results/plan.md").read_text()
    assert "| bicubic | interpolate | 1 |" in plan and "| tiny_trained | srresnet | 1 |" in plan
    # Snakemake's own log lists the jobs in the order they started.
    logs = [p.read_text() for p in (workdir / ".snakemake/log").glob("*.snakemake.log")]
    (started,) = [text for text in logs if "localrule plan:" in text]
    assert started.index("localrule plan:") < started.index("rule upscale:")


def per_image_ok(workdir: Path, dataset: str) -> dict[tuple[str, str], set[str]]:
    """Images with status ok per (task, method) of a data set."""
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    ok = per_image[(per_image["dataset"] == dataset) & (per_image["status"] == "ok")]
    return {key: set(group["image_id"]) for key, group in ok.groupby(["task", "method"])}


def test_report_counts_policies_and_lists_images_without_a_face(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    report = workdir / "reports/tiny"
    index = report.joinpath("index.html").read_text()
    assert "alignment policy" in index and "centre crop" in index and "left out" in index
    failures = report.joinpath("failures.html").read_text()
    # The emoji discs (centre crops) are still listed, with what became of them.
    assert "centre crop: scored, left out of identity" in failures
    # Emoji category pages: their own summary tables have numbers (not all dashes),
    # except a category whose only emoji is unusable (a broken file: no ground truth).
    manifest = pd.read_parquet(workdir / "results/emoji/manifest.parquet")
    usable = manifest[manifest["status"] == "ok"].explode("categories")["categories"]
    pages = sorted(report.glob("galleries/emoji/*/page-1.html"))
    assert len(pages) > 1
    for page in pages:
        text = page.read_text()
        numbers = re.search(r"<i>n</i>&nbsp;=&nbsp;[1-9]", text)
        heading = re.search(r"<h1>emoji: ([^<]+)</h1>", text)[1]
        with_truth = heading in {"all images", *(category_label(c) for c in usable)}
        assert bool(numbers) == with_truth, page
    if "croppedyale" in config["datasets"]:
        assert "prealigned" in index


def test_logs_and_benchmarks_are_written_per_job(finished_run):
    workdir, _ = finished_run
    assert list((workdir / "logs/upscale").rglob("*.log"))
    assert list((workdir / "logs/detect_faces").rglob("*.log"))
    assert list((workdir / "results/benchmarks/upscale").rglob("*.tsv"))


def test_no_temporary_files_left_behind(finished_run):
    workdir, _ = finished_run
    leftovers = [
        p for p in (workdir / "results").rglob(".*") if ".tmp" in p.name or ".old" in p.name
    ]
    assert leftovers == []


def dry_run_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule that a dry run would execute."""
    result = run_snakemake(workdir, "--dry-run", "--cores", "2", *args)
    table = result.stdout.split("Job stats:")[-1] if "Job stats:" in result.stdout else ""
    counts = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def jobs_with(workdir: Path, config: dict, name: str) -> dict[str, int]:
    """Job counts per rule of a dry run with ``config`` (written to ``workdir/name``)."""
    changed = workdir / name
    changed.write_text(yaml.safe_dump(config))
    return dry_run_jobs(workdir, "--configfile", str(changed))


def shard_tasks(workdir: Path, config: dict) -> int:
    """(shard, task) pairs of the config's data sets: one method's upscale jobs."""
    return sum(n_shards(workdir, name) * len(tasks_of(config, name)) for name in config["datasets"])


def test_nothing_to_do_after_a_complete_run(finished_run):
    workdir, _ = finished_run
    assert dry_run_jobs(workdir) == {}


def test_changing_one_method_reruns_only_that_method(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    config["methods"]["bicubic"]["filter"] = "bilinear"
    jobs = jobs_with(workdir, config, "changed.yaml")
    shard_task_pairs = shard_tasks(workdir, config)
    assert jobs == {
        "upscale": shard_task_pairs,
        "measure": shard_task_pairs,
        "merge_metrics": 1,
        "summarize": 1,
        "report": 1,
        "all": 1,
    }


def n_shards(workdir: Path, dataset: str) -> int:
    return len(list((workdir / f"results/{dataset}/faces").glob("shard-*.parquet")))


def test_lr_inputs_from_a_larger_alignment_rerun_only_what_follows(finished_run):
    """prepare.lr_source_size (PULSE's 1024 px recipe) aligns once more and makes new
    LR inputs; detection and the hr-sized ground truth stay as they are."""
    workdir, _ = finished_run
    config = config_of(workdir)
    config["prepare"] = {"lr_source_size": 128}
    jobs = jobs_with(workdir, config, "lr_source.yaml")
    shards = sum(n_shards(workdir, name) for name in config["datasets"])
    assert "detect_faces" not in jobs and "contact_sheet" not in jobs
    assert jobs["align"] == shards  # one new alignment size, 128 px
    methods = len(config["methods"])
    assert jobs["downscale"] == jobs["upscale"] / methods == jobs["measure"] / methods
    assert jobs["downscale"] == shard_tasks(workdir, config)
    # The trained model's LR inputs are new too: it trains again.
    assert jobs["training_crops"] == 1 and jobs["train"] == 1  # one split for both


def test_changing_a_batch_size_reruns_nothing(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    config["methods"]["bicubic"]["batch_size"] = 3
    assert jobs_with(workdir, config, "batch.yaml") == {}


def test_a_trained_method_is_measured_and_reported_with_its_curves(finished_run):
    workdir, _ = finished_run
    model = workdir / "resources/models/tiny_srresnet"
    history = pd.read_parquet(model / "history.parquet")
    assert list(history["iteration"]) == [3, 6]  # validate_every 3, iterations 6
    measured = ["loss", "loss_mse", "lr", "images_per_s", "val_psnr_y", "val_ssim_y"]
    assert history[measured].notna().all().all()
    assert not (model / "resume.pth").exists()
    assert (workdir / "logs/train/tiny_srresnet.log").read_text().count("iteration 6") == 1
    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    trained = summary[(summary["method"] == "tiny_trained") & (summary["category"] == "all")]
    assert set(trained["dataset"]) == set(summary["dataset"])
    assert trained.loc[trained["metric"].str.startswith("psnr_y"), "n"].gt(0).all()
    report = workdir / "reports/tiny"
    index = (report / "index.html").read_text()
    assert "tiny_trained" in index and 'id="training-charts"' in index
    assert (report / "charts/training-tiny_srresnet.svg").is_file()
    assert any(
        "tiny_trained" in p.read_text() for p in report.glob("galleries/folder/*/page-1.html")
    )


def test_changing_one_model_retrains_it_and_reruns_only_what_reads_it(finished_run):
    workdir, _ = finished_run
    config = config_of(workdir)
    config["models"]["tiny_srresnet"]["iterations"] = 9
    jobs = jobs_with(workdir, config, "model.yaml")
    shard_task_pairs = shard_tasks(workdir, config)
    assert jobs == {
        "train": 1,
        "upscale": shard_task_pairs,
        "measure": shard_task_pairs,
        "merge_metrics": 1,
        "summarize": 1,
        "report": 1,
        "all": 1,
    }
    # How many GPUs train it is no part of what it learns.
    config["models"]["tiny_srresnet"]["iterations"] = 6
    config["models"]["tiny_srresnet"]["gpus"] = 2
    assert jobs_with(workdir, config, "model.yaml") == {}
