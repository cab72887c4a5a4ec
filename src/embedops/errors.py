"""Errors that users see: each names the problem and where it is (file and line, field, request index)."""

from __future__ import annotations


class EmbedopsError(Exception):
    """Base error; the CLI turns it into a clear message and exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(EmbedopsError):
    """Bad input data: missing file, malformed record, empty text, bad encoding, unknown ids."""


class ConfigError(EmbedopsError):
    """An invalid `embedops.yaml`; `where` names the file and the field."""


class ModelError(EmbedopsError):
    """A model that cannot be found or loaded."""


class MissingDependencyError(EmbedopsError):
    """An optional dependency is not installed; the message names the pip extra."""
