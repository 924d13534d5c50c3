"""PyTorch adapter: per-example gradients, gradient sources and in-training samplers.

Importing this module imports torch; ``import sketchsel`` alone never does.
Install it with ``pip install "sketchsel[torch]"``.
"""

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - torch is installed wherever tests run
    raise ImportError(
        "sketchsel.torch needs PyTorch: pip install torch (or sketchsel[torch])."
    ) from error

from ._evolved import EvolvedBatchSampler, EvolvedStep, IndexedDataset, evolved_step
from ._gradients import linear_head_gradients, output_residuals, per_example_gradients
from ._graft import GraftSampler
from ._source import GradientSource

__all__ = [
    "EvolvedBatchSampler",
    "EvolvedStep",
    "GradientSource",
    "GraftSampler",
    "IndexedDataset",
    "evolved_step",
    "linear_head_gradients",
    "output_residuals",
    "per_example_gradients",
]
