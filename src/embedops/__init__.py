"""embedops: carry an embedding model through its whole life, from choice to retraining."""

from embedops.errors import EmbedopsError, InputError

__version__ = "0.1.0"

__all__ = ["EmbedopsError", "InputError", "__version__", "load_encoder", "Project"]


def __getattr__(name: str):
    # Lazy so that `import embedops` stays cheap (torch is imported only when a model is needed).
    if name == "load_encoder":
        from embedops.models import load_encoder

        return load_encoder
    if name == "Project":
        from embedops.project import Project

        return Project
    raise AttributeError(name)
