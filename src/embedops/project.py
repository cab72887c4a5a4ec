"""`Project`: one object that wires config -> encoder -> data -> evaluation (-> index, training, serving).

The CLI and the server are thin layers over it, and a user's own Python code uses the same object::

    from embedops import Project
    project = Project.open("embedops.yaml")
    report = project.evaluate()
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from embedops.config import ProjectConfig, load_config
from embedops.errors import ConfigError


class Project:
    """A project opened from `embedops.yaml` (or built from a ProjectConfig in code)."""

    def __init__(self, config: ProjectConfig | None = None):
        self.config = config or ProjectConfig()

    @classmethod
    def open(cls, path: str | Path = "embedops.yaml") -> Project:
        """Open and validate a project file."""
        return cls(load_config(path))

    @cached_property
    def encoder(self):
        """The project's encoder, loaded on first use."""
        from embedops.models import load_encoder

        m = self.config.model
        options: dict[str, Any] = {}
        if m.truncate_dim:
            options["truncate_dim"] = m.truncate_dim
        if m.max_tokens:
            options["max_tokens"] = m.max_tokens
        if m.device != "cpu":
            options["device"] = m.device
        if m.backend == "onnx" and m.quantization != "none":
            options["quantization"] = m.quantization
        return load_encoder(m.name, backend=m.backend, **options)

    def encode(self, texts: list[str], kind: str | None = None):
        """Embed texts with the project's model (normalised float32)."""
        return self.encoder.encode(texts, batch_size=self.config.model.batch_size, kind=kind)

    def source(self, name: str | None = None):
        """The data source called `name` (the first one when None)."""
        if not self.config.data:
            raise ConfigError("the project file has no data sources", where="data")
        if name is None:
            return self.config.data[0]
        for src in self.config.data:
            if src.name == name:
                return src
        raise ConfigError(f"no data source named {name!r}", where="data")

    def prepare(self, output: str | Path, source: str | None = None):
        """Clean, dedupe and (optionally) chunk a data source into `output`; returns the report."""
        from embedops.data.clean import CleanOptions
        from embedops.data.prepare import PrepareOptions, prepare

        p = self.config.prepare
        src = self.source(source)
        opts = PrepareOptions(
            clean=CleanOptions(strip_html=p.strip_html, normalize_unicode=p.normalize_unicode),
            dedupe=p.dedupe, near_threshold=p.near_duplicate_threshold, min_chars=p.min_chars,
            chunk_tokens=p.chunk_tokens, chunk_overlap=p.chunk_overlap,
            text_field=src.text_field, id_field=src.id_field,
        )
        tokenizer = self.encoder.tokenizer if p.chunk_tokens else None
        return prepare(self.config.resolve(src.path), output, opts, tokenizer=tokenizer)

    def evaluate(self, *, show_progress: bool = False) -> dict[str, Any]:
        """Retrieval and/or STS evaluation on the data named in the `evaluation` section."""
        from embedops.data import load_beir, load_sts, sample_beir
        from embedops.eval import evaluate_retrieval, evaluate_sts

        ev = self.config.evaluation
        out: dict[str, Any] = {}
        if ev.retrieval:
            ds = load_beir(self.config.resolve(ev.retrieval), ev.split)
            if ev.sample_queries or ev.sample_documents:
                ds = sample_beir(ds, queries=ev.sample_queries, documents=ev.sample_documents)
            res = evaluate_retrieval(self.encoder, ds, batch_size=self.config.model.batch_size,
                                     show_progress=show_progress)
            out["retrieval"] = {"metrics": res.metrics, "info": res.info}
        if ev.sts:
            out["sts"] = evaluate_sts(self.encoder, load_sts(self.config.resolve(ev.sts), ev.split),
                                      show_progress=show_progress)
        if not out:
            raise ConfigError("nothing to evaluate: set evaluation.retrieval and/or evaluation.sts")
        return out

    def check(self):
        """Measure the success criteria; a list of CriterionResult."""
        from embedops.eval.criteria import measure_criteria

        return measure_criteria(self.config, self.encoder)

    # -- index and search (embedops.index) -------------------------------------------------
    def index(self, documents=None, *, path: str | Path | None = None, overwrite: bool = False,
              show_progress: bool = False):
        """Build the project's collection (index section) from `documents` or the first data source."""
        from embedops.data import read_documents
        from embedops.index import Collection, spec_from_config

        target = self.config.resolve(path or self.config.index.path)
        col = Collection.create(target, self.encoder, spec=spec_from_config(self.config.index), overwrite=overwrite)
        if documents is None:
            src = self.source()
            documents = read_documents(self.config.resolve(src.path), text_field=src.text_field,
                                       id_field=src.id_field)
        col.add(documents, batch_size=self.config.model.batch_size, show_progress=show_progress)
        col.flush()
        self._collection = col
        return col

    @property
    def collection(self):
        """The project's collection, opened from `index.path` (refused if built with another model)."""
        col = getattr(self, "_collection", None)
        if col is None:
            from embedops.index import Collection

            col = Collection.open(self.config.resolve(self.config.index.path), self.encoder)
            self._collection = col
        return col

    def search(self, query: str, k: int = 10, filter=None, *, mode: str | None = None):
        """Search the collection by text (dense, keyword or hybrid; default from the index section)."""
        mode = mode or getattr(self.config.index, "search_mode", "dense")
        return self.collection.search(query, k, filter, mode=mode)

    def recommend(self, positive_ids, negative_ids=(), k: int = 10, filter=None):
        """More like `positive_ids`, less like `negative_ids`."""
        return self.collection.recommend(positive_ids, negative_ids, k, filter)

    # -- training (embedops.train, embedops.registry) ------------------------------------------
    def train(self, data: str | Path, *, name: str = "tuned", alias: str | None = "challenger", **options: Any):
        """Fine-tune the project's model on `data` and register the result in the project's registry."""
        from embedops.train import run_training

        return run_training(data, base=self.config.model.name, name=name,
                            registry_root=self.config.resolve(self.config.registry), alias=alias, **options)
