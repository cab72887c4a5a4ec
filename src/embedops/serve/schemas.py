"""Request and response bodies: the OpenAI embeddings API as OpenAI documents it, plus our collections API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embedops.serve.settings import check_collection_name


class _Body(BaseModel):
    # A misspelt field is an error, not a silently ignored option (as everywhere in embedops).
    model_config = ConfigDict(extra="forbid")


def check_input(value: Any) -> Any:
    """OpenAI's input forms: a string, strings, one token-id array, or token-id arrays; names a bad index."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("input[0] is empty; every input must contain text")
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"input must be a string, a list of strings or token-id arrays, got {type(value).__name__}")
    if not value:
        raise ValueError("input is an empty list; send at least one input")
    if all(type(v) is int for v in value):  # one input as token ids (bool is not a token id)
        return [value]
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"input[{i}] is empty; every input must contain text")
        elif isinstance(item, list):
            if not item:
                raise ValueError(f"input[{i}] is an empty token array")
            if not all(type(t) is int and t >= 0 for t in item):
                raise ValueError(f"input[{i}] must be an array of non-negative integer token ids")
        else:
            raise ValueError(f"input[{i}] is {type(item).__name__}; expected a string or a token-id array")
    kinds = {isinstance(item, str) for item in value}
    if len(kinds) > 1:
        raise ValueError("input mixes strings and token arrays; send one kind per request")
    return value


class EmbeddingRequest(_Body):
    """POST /v1/embeddings."""

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, texts, or token ids (one array, or one array per input); for an image model, images as "
                    "data:image/<type>;base64,<data> URLs.")
    model: str = Field(description="A model id from GET /v1/models, or an alias (default, champion ...).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="Keep the first N dimensions and renormalise.")
    user: str | None = Field(None, max_length=256)
    input_type: Literal["query", "document"] | None = Field(
        None, description="embedops: apply the model's prompt for queries or documents.")
    truncate: bool = Field(True, description="embedops: cut inputs over the model's max tokens (listed in "
                                             "truncated_inputs); false refuses them with 422 naming the index.")

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return check_input(value)


class EmbeddingObject(BaseModel):
    """One vector."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Tokens the model ran for this request."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The embeddings, in input order."""

    object: Literal["list"] = "list"
    data: list[EmbeddingObject]
    model: str
    usage: EmbeddingUsage
    truncated_inputs: list[int] = Field(default_factory=list, description="embedops: inputs cut at max tokens.")


class AliasStatus(BaseModel):
    """A registry alias this model answers for: the version served, and a newer one loading or failed to load."""

    alias: str
    version: str = Field(description="The registry version the server answers with for this alias now")
    state: Literal["current", "loading", "failed"] = Field(
        description="current: serving what the registry names; loading: the named version warms (the old one "
                    "answers meanwhile); failed: it could not load, the old one keeps answering")
    wanted: str | None = Field(None, description="The version the registry names, while loading or after failing")
    error: str | None = Field(None, description="Why `wanted` could not be served")


class ModelObject(BaseModel):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "embedops"
    dimension: int | None = None
    max_tokens: int | None = None
    aliases: list[str] = Field(default_factory=list)
    registry_version: str | None = Field(None, description="The registry version its weights are (`name@vN`)")
    registry_aliases: list[AliasStatus] = Field(
        default_factory=list, description="Registry aliases routed to this model, followed as they are promoted")


class ModelList(BaseModel):
    """GET /v1/models."""

    object: Literal["list"] = "list"
    data: list[ModelObject]


class ErrorDetail(BaseModel):
    """What went wrong."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error response."""

    error: ErrorDetail


# -- collections --------------------------------------------------------------------------------------------------
class IndexSpecIn(_Body):
    """How the collection's index is built (unset fields: the project's `index:` section)."""

    kind: Literal["auto", "flat", "hnsw", "ivfpq"] | None = None
    vectors: Literal["float32", "int8", "binary"] | None = None
    hnsw_threshold: int | None = Field(None, ge=1)
    hnsw_m: int | None = Field(None, ge=4, le=128)
    ef_construction: int | None = Field(None, ge=8, le=2048)
    ef_search: int | None = Field(None, ge=1, le=4096)
    nprobe: int | None = Field(None, ge=1, le=4096)
    oversample: int | None = Field(None, ge=1, le=100)


class CollectionCreate(_Body):
    """POST /v1/collections."""

    name: str = Field(min_length=1, max_length=64)
    model: str | None = Field(None, description="A served model (default: the server's default model).")
    index: IndexSpecIn = Field(default_factory=IndexSpecIn)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_collection_name(value)


class DocumentIn(_Body):
    """One document to upsert (same id replaces)."""

    id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsUpsert(_Body):
    """POST /v1/collections/{name}/documents."""

    documents: list[DocumentIn] = Field(min_length=1)
    refresh: bool = Field(False, description="Make them keyword-searchable before answering (default: the "
                                             "background refresh does it shortly after).")


class DocumentsDelete(_Body):
    """DELETE /v1/collections/{name}/documents."""

    ids: list[str] = Field(min_length=1)


class SearchRequest(_Body):
    """POST /v1/collections/{name}/search: a text query, a vector, or an image."""

    query: str | None = Field(None, min_length=1)
    vector: list[float] | None = Field(None, min_length=1)
    image: str | None = Field(None, min_length=1, description="An image as a data:image/<type>;base64,<data> URL "
                                                             "(image collections): search by image.")
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | None = None
    mode: Literal["dense", "keyword", "hybrid"] | None = None
    fusion: Literal["minmax", "rrf"] | None = None
    user: str | None = Field(None, min_length=1, max_length=256)  # ties feedback and experiments to a user
    session: str | None = Field(None, min_length=1, max_length=256)


class RecommendRequest(_Body):
    """POST /v1/collections/{name}/recommend."""

    positive: list[str] = Field(min_length=1)
    negative: list[str] = Field(default_factory=list)
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | None = None


class HitOut(BaseModel):
    """One search result."""

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    """Hits, best first."""

    object: Literal["list"] = "list"
    data: list[HitOut]
    collection: str
    model: str
    mode: str
    request_id: str | None = None  # send it back with POST /v1/feedback


class FeedbackRequest(_Body):
    """POST /v1/feedback: what a user did with one result of a served search."""

    request_id: str = Field(min_length=1, max_length=128)
    kind: Literal["click", "relevant", "irrelevant"] = "click"
    doc_id: str = Field(min_length=1, max_length=1024)
    rank: int | None = Field(None, ge=1, le=10_000)
    dwell_ms: float | None = Field(None, ge=0, le=86_400_000)
    user: str | None = Field(None, min_length=1, max_length=256)
    session: str | None = Field(None, min_length=1, max_length=256)


class FeedbackAccepted(BaseModel):
    """The feedback was queued for the event log."""

    object: Literal["feedback"] = "feedback"
    request_id: str
    accepted: bool


class ExperimentSearchRequest(_Body):
    """POST /v1/experiments/{name}/search: a query from a user, answered by the arm (or the interleaving) the
    experiment assigns."""

    query: str = Field(min_length=1)
    user: str = Field(min_length=1, max_length=256)
    session: str | None = Field(None, min_length=1, max_length=256)


class ExperimentSearchResponse(SearchResponse):
    """Hits plus which arm served them (`interleaved`: `teams` names the arm of each rank)."""

    experiment: str
    arm: str
    teams: list[str] | None = None


class CollectionInfo(BaseModel):
    """A collection: size, model and index."""

    object: Literal["collection"] = "collection"
    name: str
    documents: int
    model: str
    dimension: int | None = None
    index: dict[str, Any] = Field(default_factory=dict)


class CollectionList(BaseModel):
    """GET /v1/collections."""

    object: Literal["list"] = "list"
    data: list[CollectionInfo]


class WriteResult(BaseModel):
    """Upsert/delete result."""

    collection: str
    upserted: int = 0
    deleted: int = 0
    documents: int
