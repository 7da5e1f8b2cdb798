"""The registry: models, immutable versions, aliases, signatures, profiles, artifacts."""

from modelpilot.registry.artifacts import ArtifactStore
from modelpilot.registry.profile import FeatureProfile, ReferenceProfile
from modelpilot.registry.refs import PRODUCTION, ModelRef
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelInfo, ModelVersion

__all__ = [
    "PRODUCTION",
    "ArtifactStore",
    "FeatureProfile",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "ReferenceProfile",
    "Registry",
    "Signature",
    "TensorSpec",
]
