"""Model families. One folder (or file) per family, one file per model or paper."""

from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood

__all__ = ["GenerativeModel", "DensityKind", "LogLikelihood"]
