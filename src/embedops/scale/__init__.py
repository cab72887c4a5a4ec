"""Scale-out on Ray: batch embedding with Ray Data (`embed_dataset`) and serving replicas on Ray Serve.

Needs the `ray` extra for the Ray engine (`pip install 'embedops[ray]'`); the local engine and the output format
(`read_embeddings`) need nothing beyond the core install.
"""

from __future__ import annotations

from embedops.scale.embed import ENGINES, EmbedReport, embed_dataset
from embedops.scale.shards import read_embeddings, read_manifest

__all__ = ["ENGINES", "EmbedReport", "embed_dataset", "read_embeddings", "read_manifest"]
