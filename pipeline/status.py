"""Names of how an image was framed, written once for every stage, the summary and the report.

A data set's **alignment policy** (``datasets.<name>.alignment``) says how its
images are brought to the evaluation size:

- ``detect``: detect the face and align it the FFHQ way; an image without a
  detected face is centre-cropped (``prepare.no_face: center_crop``) or left out
  (``skip``).
- ``prealigned``: the images are face crops already (their authors cropped and
  aligned them); a fixed template square of the source is used as it is
  (:class:`pipeline.align.Template`). Detection still runs and is recorded.

Each image's **alignment** (column ``alignment`` of ``faces.parquet`` and
``per_image.parquet``; empty for images left out) says what was done:
``aligned`` (face detected, FFHQ alignment), ``prealigned`` (template square)
or ``centre_crop`` (no face found, largest centred square). The summary leaves
centre crops out of the metrics that need a face, with the reason
``centre_crop``.
"""

from __future__ import annotations

DETECT = "detect"
PREALIGNED = "prealigned"
ALIGNMENT_POLICIES = (DETECT, PREALIGNED)

ALIGNED = "aligned"
CENTRE_CROP = "centre_crop"
ALIGNMENTS = (ALIGNED, PREALIGNED, CENTRE_CROP)
