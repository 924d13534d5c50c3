"""sketchsel: choose which training examples to train on, with sketches.

Estimators follow the scikit-learn API and accept arrays from NumPy, CuPy,
PyTorch, JAX or any array-API library. Neither PyTorch nor CuPy is imported
here; they are loaded only when an input or a back-end needs them.
"""

from ._config import config_context, get_config, set_config
from .sampling import EvolvedSampler
from .selection import AgreementSelector, FastMaxVol, MomentMatchingSelector
from .sketch import FrequentDirections

__version__ = "0.1.0"

__all__ = [
    "AgreementSelector",
    "EvolvedSampler",
    "FastMaxVol",
    "FrequentDirections",
    "MomentMatchingSelector",
    "config_context",
    "get_config",
    "set_config",
    "__version__",
]
