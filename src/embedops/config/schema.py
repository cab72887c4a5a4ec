"""The project file `embedops.yaml`, validated by pydantic. Each stage owns one section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embedops.config.criteria import Criterion


class Section(BaseModel):
    """Base for every section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class DataSource(Section):
    """One input: a file (JSONL/CSV/Parquet), a BEIR folder, an STS file, or an image folder."""

    name: str = "corpus"
    path: str
    format: Literal["auto", "jsonl", "csv", "parquet", "beir", "sts", "images"] = "auto"
    text_field: str | None = None
    id_field: str | None = None
    split: str = "test"


class ModelConfig(Section):
    """Which model and backend encode the data."""

    name: str = "all-MiniLM-L6-v2"
    backend: Literal["torch", "onnx", "openvino"] = "torch"
    device: str = "cpu"
    batch_size: int = Field(32, ge=1, le=4096)
    max_tokens: int | None = Field(None, ge=8)
    truncate_dim: int | None = Field(None, ge=8)
    quantization: Literal["none", "int8"] = "none"


class ImagesConfig(Section):
    """Images: the image model (`embedops index build --images`, image search) and the largest image read."""

    model: str = "efficientnet-lite0"  # efficientnet-lite0 (bundled), timm:NAME, torchvision:NAME, a CLIP folder ...
    max_pixels: int = Field(64_000_000, ge=1)  # width x height; larger images are refused before decoding


class PrepareConfig(Section):
    """Cleaning, dedupe and chunking defaults for `embedops prepare`."""

    strip_html: bool = True
    normalize_unicode: bool = True
    dedupe: Literal["none", "exact", "near"] = "near"
    near_duplicate_threshold: float = Field(0.9, gt=0, le=1)
    min_chars: int = Field(1, ge=1)
    chunk_tokens: int | None = Field(None, ge=16)
    chunk_overlap: int = Field(32, ge=0)


class IndexConfig(Section):
    """Vector index settings (owned by the index stage); `embedops.index.spec_from_config` reads them."""

    path: str = "index"
    # Which engine holds collections: faiss (folders), milvus://HOST:PORT, qdrant:///PATH, qdrant+http://HOST:PORT
    # (embedops.config.store_url); with an engine, a collection's name there is the last part of its path.
    store: str = "faiss"
    kind: Literal["auto", "flat", "hnsw", "ivfpq"] = "auto"
    vectors: Literal["float32", "int8", "binary"] = "float32"
    hnsw_threshold: int = Field(20_000, ge=1)
    hnsw_m: int = Field(32, ge=4)
    ef_search: int = Field(128, ge=1)
    ef_construction: int = Field(80, ge=8)
    nprobe: int = Field(16, ge=1)
    oversample: int | None = Field(None, ge=1)
    search_mode: Literal["dense", "keyword", "hybrid"] = "dense"
    fusion: Literal["minmax", "rrf"] = "minmax"

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        from embedops.config.store_url import parse_store_url

        parse_store_url(value)  # a StoreURLError (a ValueError) names what is wrong; the loader names the field
        return value


class QuantizationGate(Section):
    """Thresholds a quantised model must meet against its float model (owned by the models stage).

    Cosines compare each calibration text's int8 and float embeddings; the metric drop (0.005 = half a point) applies
    to STS Spearman and retrieval nDCG@10; neighbour agreement is the overlap of 10-nearest-neighbour lists.
    """

    min_mean_cosine: float = Field(0.99, ge=0, le=1)
    min_min_cosine: float = Field(0.95, ge=0, le=1)
    max_metric_drop: float = Field(0.005, ge=0)
    min_neighbour_agreement: float = Field(0.8, ge=0, le=1)
    calibration_size: int = Field(1000, ge=2)


class TrainingConfig(Section):
    """Fine-tuning defaults for `embedops train` (owned by the train stage); see embedops.train.TrainParams."""

    name: str = "tuned"
    base_model: str | None = None
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    # Training sequence length; evaluation and serving keep the model's own (256 for the default).
    max_tokens: int = Field(128, ge=8)
    loss: Literal["mnrl", "cached_mnrl"] = "mnrl"
    mini_batch_size: int = Field(16, ge=1)
    matryoshka_dims: list[int] = Field(default_factory=list)
    hard_negatives: int = Field(1, ge=0)
    checkpoint_steps: int = Field(20, ge=1)
    eval_split: str | None = "test"
    eval_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 42
    # Where versions go is the project's `registry` field, shared with `embedops models`.


class CriteriaConfig(Section):
    """Success criteria and hard constraints."""

    success: list[str] = Field(default_factory=list)
    cpu_only: bool = True
    max_memory_mb: float | None = Field(None, gt=0)

    @field_validator("success")
    @classmethod
    def _parse_each(cls, value: list[str]) -> list[str]:
        for text in value:
            Criterion.parse(text)
        return value

    def parsed(self) -> list[Criterion]:
        """The success criteria as Criterion objects."""
        return [Criterion.parse(t) for t in self.success]


class EvaluationConfig(Section):
    """What `embedops check` and `embedops eval` measure by default."""

    retrieval: str | None = None
    sts: str | None = None
    split: str = "test"
    sample_queries: int | None = Field(None, ge=1)
    sample_documents: int | None = Field(None, ge=1)


COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_collection_name(name: str) -> str:
    """A collection name is a folder name under the server's root: letters, digits, `_ . -`, no `..`."""
    if not isinstance(name, str) or not COLLECTION_NAME.match(name) or ".." in name:
        raise ValueError(f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '.', '-' "
                         "(starting with a letter or digit, no '..')")
    return name


class ServingConfig(Section):
    """The `serving:` section: what `embedops serve` runs (flags and `EMBEDOPS_*` variables override it)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models: list[str] = Field(default_factory=list)  # empty: the project's `model:`
    backend: str | None = None  # None: the project's `model.backend`
    collections: dict[str, str] = Field(default_factory=dict)  # name -> folder, served as they are
    collections_root: str = "collections"  # where POST /v1/collections creates new ones
    auth: bool = True
    api_keys_file: str | None = None
    max_inputs: int = Field(2048, ge=1)  # OpenAI's own limit per request
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_queue: int = Field(4096, ge=1)  # texts waiting per model before 429
    # 429 when the work queued ahead (tokens over the model's measured tokens/s) would take longer than this; None: off.
    # Fit it to the clients' timeout: an immediate 429 beats an answer that arrives after the client left.
    max_queue_wait_s: float | None = Field(None, gt=0)
    request_timeout: float = Field(30.0, gt=0)
    shutdown_timeout: float = Field(30.0, ge=0)
    cors_origins: list[str] = Field(default_factory=list)  # empty: CORS off
    max_batch_size: int = Field(64, ge=1)
    max_batch_tokens: int = Field(16384, ge=1)
    max_wait_ms: float = Field(2.0, ge=0)
    log_level: str = "info"
    # The event log (searches, embeddings, feedback): a SQLite file relative to the project file, or a SQLAlchemy URL
    # (postgresql://...); "" or null turns logging off. Writes are batched off the request path.
    events: str | None = "events.db"
    events_queue: int = Field(10_000, ge=1)  # events waiting to be written; beyond it they are counted as dropped
    events_retention_days: float | None = Field(None, gt=0)  # older events are pruned (None: kept)

    @field_validator("collections")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            check_collection_name(name)
        return value


class ProjectConfig(Section):
    """The whole `embedops.yaml`."""

    version: Literal[1] = 1
    name: str = "embedops-project"
    use_case: Literal["semantic_search", "recommendation", "deduplication", "classification"] = "semantic_search"
    description: str = ""
    data: list[DataSource] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    quantization: QuantizationGate = Field(default_factory=QuantizationGate)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    criteria: CriteriaConfig = Field(default_factory=CriteriaConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    registry: str = "models"

    # Set by the loader: the folder relative paths are resolved against.
    root: Path = Field(default=Path("."), exclude=True)

    def resolve(self, path: str | Path) -> Path:
        """A path from the file, resolved against the file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)
