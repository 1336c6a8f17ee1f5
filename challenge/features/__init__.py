"""Pretrained feature extractors, one module each, registered by their entry points
(`challenge.extractors` in pyproject.toml), and the extraction into the shared store."""

from challenge.features.base import Extractor, Features, extractor_class, extractor_classes, make_extractor
from challenge.stores.feature_store import FeatureStore

__all__ = ["Extractor", "Features", "FeatureStore", "extractor_class", "extractor_classes", "make_extractor"]
