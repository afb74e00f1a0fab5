"""Point-in-time features, labels and the feature catalogue.

One row per (merchant_id, as_of); every feature sees only events strictly before ``as_of``.
``build_features`` writes the training panel and the latest snapshot; ``compute_features`` /
``features_for_spine`` are the same code for any spine (serving, tests). The feature-set name
and version come from ``features/catalog.yaml`` (read on first use, not at import).
"""

from features.catalog import Catalog, Feature, load_catalog
from features.pipeline import build_features, compute_features, features_for_spine
from features.spine import labels, monthly_as_of, training_spine
from features.tables import FeatureInputError, RawTables

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SET_NAME",
    "FEATURE_SET_VERSION",
    "Catalog",
    "Feature",
    "FeatureInputError",
    "RawTables",
    "build_features",
    "compute_features",
    "features_for_spine",
    "labels",
    "load_catalog",
    "monthly_as_of",
    "training_spine",
]


def __getattr__(name: str):
    if name == "FEATURE_SET_NAME":
        return load_catalog().name
    if name == "FEATURE_SET_VERSION":
        return load_catalog().version
    if name == "FEATURE_NAMES":
        return load_catalog().names
    raise AttributeError(f"module 'features' has no attribute {name!r}")
