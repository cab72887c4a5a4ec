"""Plain records that flow between stages: documents, queries, relevance judgements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A unit to embed and retrieve; `source` says where it was read (file:line) for error messages."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def full_text(self) -> str:
        """Title and text joined the way MTEB/BEIR does it: title + ' ' + text."""
        return f"{self.title} {self.text}".strip() if self.title else self.text

    def to_json(self) -> dict[str, Any]:
        """The record in BEIR's corpus layout."""
        return {"_id": self.id, "title": self.title, "text": self.text, "metadata": self.metadata}


Qrels = dict[str, dict[str, int]]
"""query id -> document id -> graded relevance (0 = not relevant)."""
