"""The project file: schema, loader, success criteria, starter template."""

from embedops.config.criteria import Criterion
from embedops.config.loader import DEFAULT_FILE, load_config
from embedops.config.schema import ProjectConfig

__all__ = ["DEFAULT_FILE", "Criterion", "ProjectConfig", "load_config"]
