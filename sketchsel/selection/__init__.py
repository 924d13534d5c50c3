"""Selectors: choose which rows (training examples) to keep."""

from ._base import BaseSelector
from ._fast_maxvol import FastMaxVol

__all__ = ["BaseSelector", "FastMaxVol"]
