"""Pretrained feature extractors, registered by name, and the shared store they fill."""

from challenge.features.base import EXTRACTORS, Extractor, Features, make_extractor, register_extractor
from challenge.stores.feature_store import FeatureStore

# importing the modules registers the extractors
from challenge.features import background, egemaps, face_crops, fer, mae, provided, wav2vec2, yamnet  # noqa: E402,F401

__all__ = ["EXTRACTORS", "Extractor", "Features", "FeatureStore", "make_extractor", "register_extractor"]
