"""What an upscaling architecture declares (:class:`ArchSpec`), and what its methods return.

A *method* in the config is a named instance of an architecture with its
options (``methods.<name>: {arch: ..., ...}``). The modules of
:mod:`pipeline.upscale.specs` declare the architectures (one ``SPECS`` tuple
each, torch-free); :mod:`pipeline.upscale` collects them. The networks load
only when a method is built.

One shape from the config to the network: the stage passes the method's
config block as it is to :func:`pipeline.upscale.build_method`, which fills in
the architecture's ``defaults``, drops the options every method has
(``COMMON_OPTIONS``) and puts the fetched files of the weight slots under
their build options (``weights`` -> ``weights_path``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Keys every method accepts, whatever its architecture (see the config schema).
COMMON_OPTIONS = frozenset({"arch", "seeds", "enabled", "batch_size", "trained"})
# The option naming a model the workflow trains (``models.<name>``), and the
# weight slot its checkpoint fills in the methods of a trainable architecture.
TRAINED = "trained"
TRAINED_SLOT = "weights"
# The config's `without_cuda` value under which the jobs of a GPU-only
# architecture upscale nothing on a machine without CUDA (the other: `run`).
SKIP_WITHOUT_CUDA = "skip"


@dataclass
class UpscaleBatch:
    """Outputs of one batch: images and per-image facts.

    ``images``: (N, size, size, 3) uint8 RGB. ``facts``: one dict per image
    (may be empty dicts) with what the method knows about it, e.g. PULSE's
    ``converged``, ``final_loss``, ``steps``; or ``resampled_with`` when a
    fixed-scale network's output was resized to the evaluation size. The
    upscale stage adds time, seed and device itself.
    """

    images: np.ndarray
    facts: list[dict[str, Any]]


class Upscaler(Protocol):
    def __call__(self, batch: np.ndarray, size: int, seeds: Sequence[int]) -> UpscaleBatch:
        """Upscale ``batch`` (N, h, w, 3) uint8 RGB to ``size`` x ``size`` uint8 RGB.

        ``seeds[i]`` is the seed of item ``i`` (a batch may hold one image under
        several seeds, so stochastic methods search them all at once);
        deterministic methods ignore it.
        """
        ...


@dataclass(frozen=True)
class DerivedWeights:
    """A file an architecture computes once from one of its checkpoints.

    It fills the optional weight slot ``slot`` of the methods that leave it
    empty (PULSE's Gaussian fit of its mapping network fills ``gaussian``
    when no ``gaussian_fit.pt`` is named). The workflow makes it once per
    checkpoint, as ``resources/weights/<checkpoint>.<slot>.pt`` (rule
    ``derive_weights``), from the checkpoint of slot ``source``, calling
    ``make(source_path, out_path, options, threads)`` with the config section
    ``config_key`` as ``options``.
    """

    slot: str
    source: str
    config_key: str
    make: Callable[[str, str, Mapping[str, Any], int], None]


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: how to build its methods, which options they take, what they need.

    ``options`` maps each option to its check; ``defaults`` are the values of
    the options a method leaves out (applied by ``build_method`` only).
    ``weight_slots`` maps each option that names a checkpoint (a key of the
    config's ``weights``) to the build option that receives the fetched file's
    path, e.g. ``{"weights": "weights_path"}``; GPU jobs never download, the
    weights stage fetched every file before. ``optional_weight_slots``: the
    same for checkpoints a method may name but need not; ``derived``: the files
    made for optional slots left empty. ``check(name, options with defaults)``
    raises ValueError naming ``methods.<name>.<key>`` for checks that involve
    the method's name or several options.
    """

    name: str
    build: Callable[[Mapping[str, Any], str], Upscaler]
    options: Mapping[str, Callable[[Any], bool]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    uses_gpu: bool = False
    # Runs at a useful speed only on CUDA (PULSE's 1024 px search: minutes per
    # image on a CPU). Its jobs skip on a machine without CUDA unless the
    # config's `without_cuda` says `run`.
    gpu_only: bool = False
    # Results depend on the seed, and (float32 search paths) on batch composition.
    stochastic: bool = False
    weight_slots: Mapping[str, str] = field(default_factory=dict)
    optional_weight_slots: Mapping[str, str] = field(default_factory=dict)
    derived: tuple[DerivedWeights, ...] = ()
    check: Callable[[str, Mapping[str, Any]], None] | None = None
    # Its methods may run a checkpoint the train stage makes (``trained: <model>``)
    # in the slot ``TRAINED_SLOT`` instead of a ``weights`` entry.
    trainable: bool = False

    @property
    def module(self) -> str:
        """The module that declares the architecture (its build imports the network):
        with its imports, the code an upscale job of this architecture runs."""
        return self.build.__module__
