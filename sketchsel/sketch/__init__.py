"""Streaming matrix sketches."""

from ._frequent_directions import FrequentDirections

__all__ = ["FrequentDirections"]
