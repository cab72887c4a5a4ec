"""Model registry: versions on disk with lineage manifests, aliases (champion/challenger), promote/rollback."""

from embedops.registry.manifest import base_model_info, library_versions
from embedops.registry.registry import ModelVersion, Registry, default_registry_root

__all__ = ["ModelVersion", "Registry", "base_model_info", "default_registry_root", "library_versions"]
