"""Linear algebra for row selection: maximum-volume submatrices, random projections and
the capped simplex.

.. autosummary::

   maxvol
   rect_maxvol
   fast_maxvol
   projection_block
   random_projection
   capped_simplex_projection

:mod:`sketchsel.linalg.maxvolpy` has maxvol and rect_maxvol with maxvolpy's
signatures, for code written for maxvolpy.
"""

from ._maxvol import fast_maxvol, maxvol, rect_maxvol
from ._projection import projection_block, random_projection
from ._simplex import capped_simplex_projection

__all__ = [
    "capped_simplex_projection",
    "fast_maxvol", "maxvol", "projection_block", "random_projection", "rect_maxvol",
]
