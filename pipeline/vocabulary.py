"""The words the stages' tables share: row statuses, alignment names, table columns.

Written once here for every stage, the summary and the report; a table's
column or a status string is spelled nowhere else.

**Statuses** (column ``status``; ``reason`` says why it is not ``ok``):

- ``manifest.parquet`` (catalog): ``ok``; ``error`` (unreadable), ``skipped``
  (not an image of the set's layout), ``duplicate``, ``missing`` (an emoji a
  platform does not draw).
- ``faces.parquet`` (detection): ``ok`` (face found); ``fallback`` (no face,
  the image kept: centre crop, or the template square of a prealigned set);
  ``no_face`` (no face, left out: ``prepare.no_face: skip``); unusable catalog
  rows keep their catalog status.
- ``per_image.parquet`` (measure): ``ok`` (scored; centre crops too, see
  ``alignment``); ``no_face`` and catalog statuses carried over;
  ``missing_output`` (the method wrote no image); ``skipped_no_cuda`` (a
  GPU-only method on a machine without CUDA); ``eps_not_reached`` (a search
  that missed eps, scored but left out of the summary under
  ``measure.eps_not_reached: exclude``).
- The summary counts every row that is not ``ok`` under its status
  (``status_missing`` for a row without one).

A data set's **alignment policy** (``datasets.<name>.alignment``) says how its
images are brought to the evaluation size:

- ``detect``: detect the face and align it the FFHQ way; an image without a
  detected face is centre-cropped (``prepare.no_face: center_crop``) or left out
  (``skip``).
- ``prealigned``: the images are face crops already (their authors cropped and
  aligned them); a fixed template square of the source is used as it is
  (:class:`pipeline.geometry.Template`). Detection still runs and is recorded.

Each image's **alignment** (column ``alignment`` of ``faces.parquet`` and
``per_image.parquet``; empty for images left out) says what was done:
``aligned`` (face detected, FFHQ alignment), ``prealigned`` (template square)
or ``centre_crop`` (no face found, largest centred square). The summary leaves
centre crops out of the metrics that need a face, with the reason
``centre_crop``.
"""

from __future__ import annotations

# ------------------------------------------------------------------ statuses

OK = "ok"
# Catalog.
ERROR = "error"
SKIPPED = "skipped"
DUPLICATE = "duplicate"
MISSING = "missing"
CATALOG_STATUSES = (OK, ERROR, SKIPPED, DUPLICATE, MISSING)
# Detection.
FALLBACK = "fallback"
NO_FACE = "no_face"
# Faces rows with an image to align and score.
FRAMED = (OK, FALLBACK)
# Detection statuses of images in which no face was found (kept, or left out).
NO_FACE_STATUSES = (FALLBACK, NO_FACE)
# Measure.
MISSING_OUTPUT = "missing_output"
SKIPPED_NO_CUDA = "skipped_no_cuda"
EPS_NOT_REACHED = "eps_not_reached"
# Per-image rows whose output exists and was scored (shown in the report's galleries).
SCORED = (OK, EPS_NOT_REACHED)
# Summary: a row without a status.
STATUS_MISSING = "status_missing"

# measure.eps_not_reached: what the metric tables do with searches that missed eps.
EPS_EXCLUDE = "exclude"
EPS_SCORE = "score"
EPS_POLICIES = (EPS_EXCLUDE, EPS_SCORE)

# ------------------------------------------------------------------ alignment

DETECT = "detect"
PREALIGNED = "prealigned"
ALIGNMENT_POLICIES = (DETECT, PREALIGNED)

ALIGNED = "aligned"
CENTRE_CROP = "centre_crop"
ALIGNMENTS = (ALIGNED, PREALIGNED, CENTRE_CROP)
# A summary row's alignment count for rows without one.
ALIGNMENT_UNKNOWN = "unknown"

# ------------------------------------------------------------------ columns

# manifest.parquet: every kind writes at least these.
# ``width`` and ``height`` are the displayed size, ``exif_orientation`` (1-8, 1: none)
# the EXIF orientation applied at decoding.
MANIFEST_COLUMNS = [
    "image_id", "path", "relpath", "sha256", "bytes", "width", "height", "mode", "format",
    "exif_orientation", "subject", "condition", "split", "categories", "status", "reason",
]  # fmt: skip
# What identifies one summary table: a data set, a task, a kernel and a method.
GROUP_COLUMNS = ("dataset", "task", "kernel", "method")
# What a report section and a chart group show: the methods of one data set x task x kernel.
SECTION_COLUMNS = GROUP_COLUMNS[:3]
# The statistics of a summary row, after its group columns (and category).
SUMMARY_STAT_COLUMNS = (
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
)
# What a reader of the summary (tables, charts) needs of it.
SUMMARY_REQUIRED = (*GROUP_COLUMNS, "metric", "n", "mean", "ci_low", "ci_high")
# The summary's category over every image, beside the manifests' categories.
ALL_IMAGES = "all"
