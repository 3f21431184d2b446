"""The training stage: networks trained by the workflow on a data set's aligned crops.

A model (``models.<name>`` in the config) is trained on the aligned crops of
one data set split and the LR inputs the prepare stage made of them with a
declared kernel, the same files the evaluation reads. The stage reads the
upscale stage's networks (:mod:`pipeline.upscale.srresnet`) and the measure
stage's metric functions (PSNR-Y and SSIM-Y with BasicSR's conventions, LPIPS);
the report reads its history tables.

- :mod:`pipeline.train.crops`: the decoded training pairs of a split, cached once.
- :mod:`pipeline.train.loop`: the training loop, its checkpoints and history,
  and ``time_steps`` (training steps timed on any device, for benchmarks).
- :mod:`pipeline.train.stage`: the job: devices (DDP over several GPUs), threads.
- :mod:`pipeline.train.discriminator`, :mod:`pipeline.train.losses`: SRGAN's
  discriminator, the VGG feature loss and the adversarial losses.
"""

from __future__ import annotations

# Architectures a model may have, and whose methods may run one (``trained``).
TRAINABLE_ARCHS = ("srresnet", "srgan")

# Columns of history.parquet, one row per validation (every ``validate_every``
# iterations and at the last): the mean training losses since the previous row
# (``loss`` the generator's total, ``loss_<part>`` each term), the learning rate,
# training throughput, and the validation metrics (NaN when a metric is off).
HISTORY_COLUMNS = (
    "iteration",
    "loss",
    "lr",
    "images_per_s",
    "val_psnr_y",
    "val_ssim_y",
    "val_lpips",
)
