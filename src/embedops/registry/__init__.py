"""Model registry: versions on disk with lineage manifests, aliases (champion/challenger), promote/rollback."""

from embedops.registry.manifest import base_model_info, library_versions
from embedops.registry.registry import (
    GateRefusedError,
    ModelVersion,
    Registry,
    RegistryDamagedError,
    default_registry_root,
    registry_resolver,
)

__all__ = ["GateRefusedError", "ModelVersion", "Registry", "RegistryDamagedError", "base_model_info",
           "default_registry_root", "library_versions", "registry_resolver"]
