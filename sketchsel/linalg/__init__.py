"""Linear algebra for row selection: maximum-volume submatrices.

.. autosummary::

   maxvol
   rect_maxvol
   fast_maxvol
"""

from ._maxvol import fast_maxvol, maxvol, rect_maxvol

__all__ = ["fast_maxvol", "maxvol", "rect_maxvol"]
