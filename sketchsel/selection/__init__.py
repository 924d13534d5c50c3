"""Selectors: choose which rows (training examples) to keep."""

from ._agreement import AgreementSelector
from ._base import BaseSelector
from ._fast_maxvol import FastMaxVol
from ._moment_matching import MomentMatchingSelector

__all__ = ["AgreementSelector", "BaseSelector", "FastMaxVol", "MomentMatchingSelector"]
