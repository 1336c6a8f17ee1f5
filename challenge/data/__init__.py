"""Readers of the official layouts into one samples table."""

from challenge.data.samples import Sample, Samples

__all__ = ["Sample", "Samples"]
