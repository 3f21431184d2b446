"""The measure stage: each upscaled image of a shard scored against its ground truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.devices import job_device, limit_cpu_threads
from pipeline.io import InputError, load_array, write_parquet
from pipeline.measure import quality
from pipeline.measure.arcface import COLUMNS as ARCFACE_COLUMNS
from pipeline.measure.catalogue import METRIC_COLUMNS
from pipeline.measure.reference import (
    compares_faces,
    read_arcface_references,
    read_reference_features,
)
from pipeline.resize import downscale as downscale_image
from pipeline.vocabulary import (
    EPS_EXCLUDE,
    EPS_NOT_REACHED,
    EPS_POLICIES,
    FRAMED,
    MISSING_OUTPUT,
    NO_FACE,
    OK,
    SKIPPED_NO_CUDA,
)


def _status_of(face_status: str, reason: str) -> tuple[str, str]:
    """A faces row's status as a metrics row's: every image with a ground truth is ``ok``
    (centre crops too; their ``alignment`` keeps them out of the face metrics)."""
    if face_status in FRAMED:
        return OK, ""
    if face_status == NO_FACE:
        return NO_FACE, "no face detected"
    return face_status, reason or "unusable source image"


def measure(
    faces_path: Path,
    hr_dir: Path,
    lr_dir: Path,
    sr_dir: Path,
    out: Path,
    *,
    dataset: str,
    method: str,
    kernel: str,
    lr: int | str,
    hr: int | str,
    seeds: Sequence[int],
    crop_border: int,
    lpips: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
    arcface: Mapping[str, Any] | None = None,
    checkpoints: Mapping[str, Any] | None = None,
    references: Path | None = None,
    eps_not_reached: str = EPS_EXCLUDE,
    device: str | None = None,
    gpus: int = 0,
    gpu_lock_dir: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Score each upscaled image of a shard against its ground truth.

    One row per (image, seed), for every image of the shard: images that could
    not be scored keep a status and a reason and NaN metrics. Each row carries
    its image's ``alignment`` (``aligned``, ``prealigned``, ``centre_crop``); a
    centre crop has no face, so the metrics that need one (identity) are not
    computed for it (NaN), while every metric against the ground truth is. The
    upscaling stage's per-image facts (time, device, convergence) are joined in.
    How each metric is computed: :mod:`pipeline.measure.catalogue`.

    ``dataset``, ``method``, ``kernel``, ``lr`` and ``hr`` say what the shard is
    (the rule's wildcards). ``lpips``, ``identity`` and ``arcface`` are the
    config's ``measure.lpips`` (``enabled``, ``net``, ``batch_size``),
    ``measure.identity`` (``enabled`` and the options of
    :func:`pipeline.measure.identity.identity_distance`) and ``measure.arcface``
    (``enabled``, ``batch_size``); None turns a metric off. ``checkpoints``
    holds LPIPS's files as ``lpips_features`` and ``lpips_linear`` and
    ArcFace's as ``arcface`` (the rule's named inputs). ``references``: the
    shard's ground-truth descriptors and embeddings
    (:mod:`pipeline.measure.reference`, the rule ``reference_features``); None
    computes them here, once per image. The networks are loaded once per job
    and not at all when disabled (see :func:`batched_metrics`). ``device``: a torch device, else
    one is claimed for the job (a GPU of its own when ``gpus`` > 0 and one is
    visible, see :func:`pipeline.devices.job_device`). ``threads``: torch's CPU
    threads (the rule's ``threads``; None leaves torch's default, every core,
    whose idle threads spin and cost CPU time when jobs share the cores).

    Searches that missed eps (facts ``converged`` false): with ``eps_not_reached``
    ``exclude`` (default) their row gets status ``eps_not_reached`` (still scored,
    for the report's failures page and galleries; the summary leaves it out and
    counts it, as every status other than ``ok``); ``score`` keeps them ``ok``.
    """
    if eps_not_reached not in EPS_POLICIES:
        raise ValueError(f"eps_not_reached must be one of {EPS_POLICIES}, got {eps_not_reached!r}")
    if device is None:
        with job_device(int(gpus) > 0, gpu_lock_dir) as claimed:
            return measure(
                faces_path, hr_dir, lr_dir, sr_dir, out,
                dataset=dataset, method=method, kernel=kernel, lr=lr, hr=hr, seeds=seeds,
                crop_border=crop_border, lpips=lpips, identity=identity, arcface=arcface,
                checkpoints=checkpoints, references=references, eps_not_reached=eps_not_reached,
                device=claimed, threads=threads,
            )  # fmt: skip
    lr_size, hr_size = int(lr), int(hr)
    keys = {
        "dataset": dataset,
        "method": method,
        "task": f"{lr_size}to{hr_size}",
        "lr_size": lr_size,
        "hr_size": hr_size,
    }
    lpips = lpips if lpips and lpips["enabled"] else None
    identity = identity if identity and identity["enabled"] else None
    arcface = arcface if arcface and arcface["enabled"] else None
    faces = pd.read_parquet(faces_path)
    facts = _read_facts(Path(sr_dir) / "facts.parquet")
    batched = batched_metrics(
        lpips=lpips, identity=identity, arcface=arcface, checkpoints=checkpoints,
        references=references, device=device, threads=threads,
    )  # fmt: skip
    columns = {name: np.nan for metric in batched for name in metric.columns}
    rows: list[dict[str, Any]] = []
    for face in tqdm(faces.itertuples(), total=len(faces), desc="measure", mininterval=10):
        status, reason = _status_of(
            face.status, face.reason if isinstance(face.reason, str) else ""
        )
        hr_path = Path(hr_dir) / f"{face.image_id}.png"
        lr_path = Path(lr_dir) / f"{face.image_id}.png"
        usable = face.status in FRAMED
        alignment = getattr(face, "alignment", None)
        alignment = alignment if isinstance(alignment, str) else None
        with_face = compares_faces(face.status, alignment)
        hr_image = load_array(hr_path) if usable else None
        lr_image = load_array(lr_path) if usable else None
        for seed in seeds:
            sr_path = Path(sr_dir) / f"{face.image_id}_s{seed}.png"
            row: dict[str, Any] = {
                **keys, "image_id": face.image_id, "seed": int(seed), "kernel": kernel,
                "status": status, "reason": reason, "alignment": alignment,
                "crop_border": crop_border,
                "lr_path": str(lr_path), "sr_path": str(sr_path), "hr_path": str(hr_path),
                **dict.fromkeys(METRIC_COLUMNS, np.nan), **columns,
                **facts.get((face.image_id, int(seed)), {}),
            }  # fmt: skip
            pair = None
            if row["status"] == SKIPPED_NO_CUDA:
                pass  # the upscale stage's reason stands
            elif usable and not sr_path.exists():
                row.update(status=MISSING_OUTPUT, reason=f"{sr_path} was not produced")
            elif usable:
                sr = load_array(sr_path)
                row.update(_score(sr, hr_image, lr_image, lr_size, kernel, crop_border))
                pair = Pair(face.image_id, sr, hr_image, with_face)
            if eps_not_reached == EPS_EXCLUDE:
                _flag_missed_eps(row)
            rows.append(row)
            if pair is not None:
                for metric in batched:
                    metric.add(len(rows) - 1, pair, rows)
    for metric in batched:
        metric.finish(rows)
    frame = pd.DataFrame(rows)
    write_parquet(out, frame)
    return frame


@dataclass(frozen=True)
class Pair:
    """One scored output and its ground truth (uint8 RGB); ``with_face``: the image
    has a face to compare (:func:`pipeline.measure.reference.compares_faces`)."""

    image_id: str
    sr: np.ndarray
    hr: np.ndarray
    with_face: bool


class BatchedMetric(Protocol):
    """A metric the stage hands every scored pair and lets compute in batches.

    ``columns``: the columns it fills (NaN in rows it does not score). ``add``
    takes the index of a row of ``rows`` and its pair (a metric that needs a
    face skips pairs without one) and may compute what it has queued, writing
    its columns into ``rows``; ``finish`` computes the rest. A new metric is a
    class of this shape, made in :func:`batched_metrics` when the config enables
    it, beside its entry in :mod:`pipeline.measure.catalogue`.
    """

    columns: tuple[str, ...]

    def add(self, index: int, pair: Pair, rows: list[dict[str, Any]]) -> None: ...

    def finish(self, rows: list[dict[str, Any]]) -> None: ...


class QueuedMetric:
    """A :class:`BatchedMetric` that scores queued pairs ``batch_size`` at a time.

    A subclass sets ``columns``, ``batch_size`` and ``needs_face`` (pairs without
    a face are then skipped) and scores a full queue in :meth:`score`.
    """

    columns: tuple[str, ...]
    batch_size: int
    needs_face = False

    def __init__(self) -> None:
        self.queued: list[tuple[int, Pair]] = []

    def add(self, index: int, pair: Pair, rows: list[dict[str, Any]]) -> None:
        if self.needs_face and not pair.with_face:
            return
        self.queued.append((index, pair))
        if len(self.queued) >= self.batch_size:
            self.finish(rows)

    def finish(self, rows: list[dict[str, Any]]) -> None:
        if self.queued:
            self.score(self.queued, rows)
            self.queued.clear()

    def score(self, queued: list[tuple[int, Pair]], rows: list[dict[str, Any]]) -> None:
        """Write this metric's columns of each queued ``(row index, pair)`` into ``rows``."""
        raise NotImplementedError


class LpipsMetric(QueuedMetric):
    """LPIPS over batches of ``batch_size`` pairs (the model is loaded once per job)."""

    def __init__(
        self,
        lpips: Mapping[str, Any],
        checkpoints: Mapping[str, Any],
        device: str,
        threads: int | None = None,
    ):
        from pipeline.measure.perceptual import load_lpips

        super().__init__()
        limit_cpu_threads(device, threads)
        self.column = f"lpips_{lpips['net']}"
        self.columns = (self.column,)
        self.batch_size = int(lpips["batch_size"])
        self.model = load_lpips(
            lpips["net"], checkpoints["lpips_features"], checkpoints["lpips_linear"], device
        )

    def score(self, queued: list[tuple[int, Pair]], rows: list[dict[str, Any]]) -> None:
        from pipeline.measure.perceptual import lpips_distance

        distances = lpips_distance(
            self.model,
            np.stack([pair.sr for _, pair in queued]),
            np.stack([pair.hr for _, pair in queued]),
            batch_size=self.batch_size,
        )
        for (index, _), value in zip(queued, distances, strict=True):
            rows[index][self.column] = float(value)


class IdentityMetric:
    """dlib's identity distance of each pair with a face, one output at a time (dlib's
    network gains nothing from batches). The ground truth's descriptors come from the
    shard's reference table when given, else are computed once per image here."""

    columns = ("identity_distance",)

    def __init__(self, identity: Mapping[str, Any], references: Path | None):
        from pipeline.measure.identity import identity_distance

        self.distance = identity_distance
        self.options = {k: v for k, v in identity.items() if k != "enabled"}
        self.references = references
        self.hr_faces = read_reference_features(references) if references else {}

    def add(self, index: int, pair: Pair, rows: list[dict[str, Any]]) -> None:
        if not pair.with_face:
            return
        if pair.image_id not in self.hr_faces:
            if self.references is not None:
                raise InputError(
                    self.references, f"has no ground-truth descriptor of {pair.image_id}"
                )
            from pipeline.measure.identity import face_descriptor

            self.hr_faces[pair.image_id] = face_descriptor(pair.hr, **self.options)
        hr_face = self.hr_faces[pair.image_id]
        rows[index].update(self.distance(pair.sr, pair.hr, hr_face=hr_face, **self.options))

    def finish(self, rows: list[dict[str, Any]]) -> None:
        pass


class ArcFaceMetric(QueuedMetric):
    """ArcFace's angle and cosine of each pair with a face (:mod:`pipeline.measure.arcface`),
    the outputs embedded ``batch_size`` at a time on the job's device. The ground truth's
    embeddings come from the shard's reference table when given, else are computed
    here, once per image for every seed."""

    columns = ARCFACE_COLUMNS
    needs_face = True

    def __init__(
        self,
        arcface: Mapping[str, Any],
        checkpoints: Mapping[str, Any] | None,
        references: Path | None,
        device: str,
        threads: int | None = None,
    ):
        from pipeline.measure.arcface import checkpoint_of, load_arcface

        super().__init__()
        limit_cpu_threads(device, threads)
        self.network = load_arcface(checkpoint_of(checkpoints, "measure"), device)
        self.batch_size = int(arcface["batch_size"])
        self.references = references
        self.truths = read_arcface_references(references) if references else {}

    def score(self, queued: list[tuple[int, Pair]], rows: list[dict[str, Any]]) -> None:
        from pipeline.measure.arcface import ANGLE, COSINE, angle_degrees, cosine_similarity, embed

        missing = {p.image_id: p.hr for _, p in queued if p.image_id not in self.truths}
        if missing and self.references is not None:
            raise InputError(
                self.references, f"has no ground-truth ArcFace embedding of {min(missing)}"
            )
        if missing:
            vectors = embed(self.network, list(missing.values()), self.batch_size)
            self.truths.update(zip(missing, vectors, strict=True))
        outputs = embed(self.network, [pair.sr for _, pair in queued], self.batch_size)
        truths = np.stack([self.truths[pair.image_id] for _, pair in queued])
        cosines, angles = cosine_similarity(outputs, truths), angle_degrees(outputs, truths)
        for (index, _), cosine, angle in zip(queued, cosines, angles, strict=True):
            rows[index].update({COSINE: float(cosine), ANGLE: float(angle)})


def batched_metrics(
    *,
    lpips: Mapping[str, Any] | None,
    identity: Mapping[str, Any] | None,
    checkpoints: Mapping[str, Any] | None,
    references: Path | None,
    device: str,
    arcface: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> list[BatchedMetric]:
    """The enabled metrics beyond PSNR/SSIM/LR consistency, each loaded once per job;
    a disabled one loads nothing (no torch without LPIPS or ArcFace, no dlib without
    identity)."""
    metrics: list[BatchedMetric] = []
    if lpips:
        if checkpoints is None:
            raise ValueError("measure: LPIPS is enabled, but its checkpoints were not given")
        metrics.append(LpipsMetric(lpips, checkpoints, device, threads))
    if identity:
        metrics.append(IdentityMetric(identity, references))
    if arcface:
        metrics.append(ArcFaceMetric(arcface, checkpoints, references, device, threads))
    return metrics


def _flag_missed_eps(row: dict[str, Any]) -> None:
    """Status ``eps_not_reached`` for a scored row whose search never reached eps.

    Only rows that are otherwise ``ok``: an image without a face keeps that status.
    Methods that report no ``converged`` fact are never flagged.
    """
    converged = row.get("converged")
    if row["status"] != OK or converged is None or pd.isna(converged) or bool(converged):
        return
    reason = "eps not reached"
    if "min_l2" in row and "eps" in row and not pd.isna(row["min_l2"]):
        reason += f" (lowest L2 {float(row['min_l2']):.4g} > eps {float(row['eps']):.4g})"
    row.update(status=EPS_NOT_REACHED, reason=reason)


def _read_facts(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (image, seed) facts of the upscaling stage, keyed for joining."""
    if not path.exists():
        return {}
    facts = pd.read_parquet(path)
    records = facts.drop(columns=["image_id", "seed"]).to_dict("records")
    keys = zip(facts["image_id"], facts["seed"].astype(int), strict=True)
    return {key: record for key, record in zip(keys, records, strict=True)}


def _score(
    sr: np.ndarray, hr: np.ndarray, lr: np.ndarray, lr_size: int, kernel: str, crop_border: int
) -> dict[str, float]:
    reduced = downscale_image(sr, lr_size, kernel)
    return {
        "psnr_rgb": quality.psnr(sr, hr, crop_border=crop_border, y_channel=False),
        "psnr_y": quality.psnr(sr, hr, crop_border=crop_border, y_channel=True),
        "ssim_y": quality.ssim(sr, hr, crop_border=crop_border, y_channel=True),
        "lr_psnr": quality.psnr(reduced, lr, crop_border=0),
        "lr_mse": quality.mse(reduced, lr),
    }
