"""Samplers: which training examples a training loop visits, step by step.

Framework-free (NumPy only); :mod:`sketchsel.torch` has the PyTorch face.
"""

from ._evolved import EvolvedSampler
from ._weighted import weighted_sample_without_replacement

__all__ = ["EvolvedSampler", "weighted_sample_without_replacement"]
