"""`Project`: the one library API. The CLI, the HTTP server and the retraining loop all call it.

It wires `embedops.yaml` -> registry -> encoder -> collection -> evaluation -> training, so everything in the file is
honoured the same way from Python and from the command line::

    from embedops import Project
    project = Project.open("embedops.yaml")
    report = project.evaluate()
    project.index()
    hits = project.search("vitamin D and diabetes", k=5)

A `Project` is safe to share between threads: encoders and collections are created once under a lock, encoders
are thread-safe, and collections take one writer and many readers.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedops.config import ProjectConfig, checks, load_config
from embedops.errors import ConfigError, InputError
from embedops.production import ProductionMixin
from embedops.project_images import ImagesMixin
from embedops.project_stores import StoresMixin

_UNSET = object()


class Project(ProductionMixin, ImagesMixin, StoresMixin):
    """A project opened from `embedops.yaml` (or built from a ProjectConfig in code)."""

    def __init__(self, config: ProjectConfig | None = None):
        self.config = config or ProjectConfig()
        self._lock = threading.RLock()
        self._encoders: dict[tuple, Any] = {}
        self._collections: dict[Path, Any] = {}

    @classmethod
    def open(cls, path: str | Path = "embedops.yaml") -> Project:
        """Open and validate a project file."""
        return cls(load_config(path))

    @classmethod
    def from_options(cls, config: str | Path | None = None, *, registry: str | Path | None = None) -> Project:
        """The CLI's project: the file when given, else the defaults (registry `$EMBEDOPS_REGISTRY` or ./models)."""
        if config is not None:
            cfg = load_config(config)
        else:
            cfg = ProjectConfig()
            if os.environ.get("EMBEDOPS_REGISTRY"):
                cfg.registry = os.environ["EMBEDOPS_REGISTRY"]
        if registry is not None:
            cfg.registry = str(Path(registry).resolve())
        return cls(cfg)

    # -- registry ---------------------------------------------------------------------------
    @property
    def registry_root(self) -> Path:
        """The project's registry folder (`registry:` in the file, resolved against the file's folder)."""
        return self.config.resolve(self.config.registry)

    @property
    def registry(self):
        """The project's model registry."""
        from embedops.registry import Registry

        return Registry(self.registry_root)

    def resolver(self) -> Callable[[str], Path | None]:
        """Resolves registry names (`champion`, `tuned@v2`) against this project's registry, for the models layer."""
        from embedops.registry import registry_resolver

        return registry_resolver(self.registry_root)

    # -- models -----------------------------------------------------------------------------
    def load_encoder(self, model: str | None | object = _UNSET, *, backend: str | None = None,
                     quantization: str | None = None, quiet: bool = True, cache: bool = True, **options: Any):
        """An encoder for `model` (default: the project's), with the `model:` section's options; cached per spec
        (`cache=False`: a fresh one the caller owns, e.g. a server's next version, freed when it is retired)."""
        m = self.config.model
        name = m.name if model is _UNSET else model
        backend = backend or m.backend
        quantization = quantization or m.quantization
        checks.choice(backend, ("torch", "onnx", "openvino"), "backend")
        if quantization not in ("none", "int8"):
            raise InputError(f"quantization must be none or int8, got {quantization!r}", where="quantization")
        if quantization != "none" and backend not in ("onnx", "openvino"):
            raise InputError("quantization int8 needs the onnx or openvino backend", where="quantization")
        opts: dict[str, Any] = {}
        if m.truncate_dim:
            opts["truncate_dim"] = m.truncate_dim
        if m.max_tokens:
            opts["max_tokens"] = m.max_tokens
        if m.device != "cpu" and backend == "torch":
            opts["device"] = m.device
        if backend in ("onnx", "openvino") and quantization != "none":
            opts["quantization"] = quantization
        opts.update({k: v for k, v in options.items() if v is not None})
        key = (name, backend, tuple(sorted(opts.items())))
        with self._lock:
            encoder = self._encoders.get(key) if cache else None
            if encoder is None:
                from embedops.models import is_image_model, load_encoder

                if quiet:
                    from embedops._console import quiet_libraries

                    quiet_libraries()
                if is_image_model(name, self.resolver()) and backend == "torch":
                    # An image model takes the `images:` section's options, not the text model's (project_images.py).
                    encoder = self.load_image_encoder(name, **options)
                else:
                    encoder = load_encoder(name, backend=backend, resolver=self.resolver(), **opts)
                if cache:
                    self._encoders[key] = encoder
        return encoder

    def forget_encoder(self, encoder: Any) -> None:
        """Drop `encoder` from the cache (a server retired it after a promotion), so its memory can be freed."""
        with self._lock:
            for key in [k for k, e in self._encoders.items() if e is encoder]:
                del self._encoders[key]

    @property
    def encoder(self):
        """The project's encoder (the `model:` section), loaded on first use."""
        return self.load_encoder()

    def encoder_from_spec(self, spec: dict[str, Any]):
        """Load the encoder a collection recorded (its `Encoder.spec()`); the index layer calls this to reopen."""
        from embedops.models import encoder_from_spec

        key = ("spec", spec.get("fingerprint"), spec.get("location"))
        with self._lock:
            encoder = self._encoders.get(key)
            if encoder is None:
                extra = {"max_pixels": self.config.images.max_pixels} if spec.get("modality") == "image" else {}
                encoder = encoder_from_spec(spec, resolver=self.resolver(), **extra)
                self._encoders[key] = encoder
        return encoder

    def encode(self, texts: list[str], kind: str | None = None):
        """Embed texts with the project's model (normalised float32)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError("must be a list of strings", where="texts")
        checks.choice(kind, ("query", "document"), "kind")
        return self.encoder.encode(texts, batch_size=self.config.model.batch_size, kind=kind)

    # -- data -------------------------------------------------------------------------------
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

    def prepare(self, output: str | Path, source: str | Path | None = None, *, options=None, model=_UNSET):
        """Clean, dedupe and (optionally) chunk a data source (a name from `data:` or a path) into `output`."""
        from embedops.data.clean import CleanOptions
        from embedops.data.prepare import PrepareOptions, prepare

        if isinstance(source, Path) or (isinstance(source, str) and Path(source).exists()):
            path, text_field, id_field = Path(source), None, None
        else:
            src = self.source(source)
            path, text_field, id_field = self.config.resolve(src.path), src.text_field, src.id_field
        checks.existing(path, "source")
        checks.writable_target(output, "output")
        if options is None:
            p = self.config.prepare
            options = PrepareOptions(
                clean=CleanOptions(strip_html=p.strip_html, normalize_unicode=p.normalize_unicode),
                dedupe=p.dedupe, near_threshold=p.near_duplicate_threshold, min_chars=p.min_chars,
                chunk_tokens=p.chunk_tokens, chunk_overlap=p.chunk_overlap,
                text_field=text_field, id_field=id_field,
            )
        tokenizer = self.load_encoder(model).tokenizer if options.chunk_tokens else None
        return prepare(path, output, options, tokenizer=tokenizer)

    # -- evaluation -------------------------------------------------------------------------
    def evaluate_retrieval(self, data: str | Path | None = None, *, split: str | None = None, encoder=None,
                           metrics=None, sample_queries: int | None = None, sample_documents: int | None = None,
                           use_cache: bool = True, show_progress: bool = False, chunk_tokens: int | None = None,
                           chunk_overlap: int = 32):
        """Exact-search retrieval evaluation on a BEIR folder (default: `evaluation.retrieval`)."""
        from embedops.data import load_beir, sample_beir
        from embedops.eval import DEFAULT_METRICS, evaluate_retrieval

        ev = self.config.evaluation
        if data is None and not ev.retrieval:
            raise ConfigError("set evaluation.retrieval to a BEIR folder", where="evaluation.retrieval")
        metrics = checks.retrieval_metrics(metrics, "metrics") if metrics is not None else None
        checks.positive_int(sample_queries, "sample_queries")
        checks.positive_int(sample_documents, "sample_documents")
        checks.chunking(chunk_tokens, chunk_overlap)
        path = Path(data) if data is not None else self.config.resolve(ev.retrieval)
        checks.existing(path, "data" if data is not None else "evaluation.retrieval", kind="dir")
        ds = load_beir(path, split or ev.split)
        sq = sample_queries if sample_queries is not None else (ev.sample_queries if data is None else None)
        sd = sample_documents if sample_documents is not None else (ev.sample_documents if data is None else None)
        if sq or sd:
            ds = sample_beir(ds, queries=sq, documents=sd)
        if not ds.queries or not ds.corpus:  # never a score computed on nothing
            raise InputError(f"no judged queries or no documents for split {ds.split!r}", where=str(path))
        return evaluate_retrieval(encoder or self.encoder, ds, metrics=metrics or DEFAULT_METRICS,
                                  batch_size=self.config.model.batch_size, use_cache=use_cache,
                                  show_progress=show_progress, chunk_tokens=chunk_tokens,
                                  chunk_overlap=chunk_overlap), ds

    def evaluate_sts(self, data: str | Path | None = None, *, split: str | None = None, encoder=None,
                     use_cache: bool = True, show_progress: bool = False) -> dict[str, Any]:
        """Spearman/Pearson on an STS file (default: `evaluation.sts`)."""
        from embedops.data import load_sts
        from embedops.eval import evaluate_sts

        ev = self.config.evaluation
        if data is None and not ev.sts:
            raise ConfigError("set evaluation.sts to an STS file", where="evaluation.sts")
        path = Path(data) if data is not None else self.config.resolve(ev.sts)
        checks.existing(path, "data" if data is not None else "evaluation.sts")
        return evaluate_sts(encoder or self.encoder, load_sts(path, split or ev.split),
                            batch_size=self.config.model.batch_size, use_cache=use_cache,
                            show_progress=show_progress)

    def evaluate(self, *, encoder=None, show_progress: bool = False) -> dict[str, Any]:
        """Retrieval and/or STS evaluation on the data named in the `evaluation` section."""
        ev = self.config.evaluation
        out: dict[str, Any] = {}
        if ev.retrieval:
            res, _ = self.evaluate_retrieval(encoder=encoder, show_progress=show_progress)
            out["retrieval"] = {"metrics": res.metrics, "info": res.info}
        if ev.sts:
            out["sts"] = self.evaluate_sts(encoder=encoder, show_progress=show_progress)
        if not out:
            raise ConfigError("nothing to evaluate: set evaluation.retrieval and/or evaluation.sts")
        return out

    def criteria_data(self):
        """The evaluation data the success criteria need, read and checked (before any model loads)."""
        from embedops.eval.criteria import load_criteria_data

        return load_criteria_data(self.config)

    def check(self, encoder=None, *, show_progress: bool = False, data=None):
        """Measure the success criteria; a list of CriterionResult (pass, fail or not measured, never assumed).

        The evaluation data is read first, so a missing file is refused before the model loads.
        """
        from embedops.eval.criteria import measure_criteria

        data = data if data is not None else self.criteria_data()
        return measure_criteria(self.config, encoder or self.encoder, data=data, show_progress=show_progress)

    def gate(self, encoder=None, *, show_progress: bool = False) -> dict[str, Any]:
        """The quality gate: the criteria measured with `encoder`; failed when one fails or cannot be measured."""
        criteria = self.config.criteria.parsed()
        if not criteria:
            return {"passed": True, "summary": "no success criteria in the project file", "criteria": []}
        results = self.check(encoder, show_progress=show_progress)
        failed = [r for r in results if r.status == "fail"]
        unmeasured = [r for r in results if r.status == "not measured"]
        parts = [f"{r.criterion} measured {r.value:.4g}" for r in failed]
        parts += [f"{r.criterion} not measured ({r.note})" for r in unmeasured]
        summary = "; ".join(parts) if parts else "all criteria measured and pass"
        ok = not failed and not unmeasured
        return {"passed": ok, "summary": summary, "criteria": [r.as_dict() for r in results]}

    # -- batch embedding (embedops.scale) ------------------------------------------------------
    def embed(self, data: str | Path, output: str | Path, **options: Any):
        """Embed a prepared dataset into Parquet shards of ids + vectors, locally or on Ray (resumable);
        options as `embedops.scale.embed_dataset`."""
        from embedops.scale import embed_dataset

        return embed_dataset(self, data, output, **options)

    # -- index and search (embedops.index) --------------------------------------------------
    def index_spec(self, **overrides: Any):
        """The IndexSpec of the `index:` section, with overrides."""
        from dataclasses import replace

        from embedops.index import spec_from_config

        spec = spec_from_config(self.config.index)
        return replace(spec, **{k: v for k, v in overrides.items() if v is not None}) if overrides else spec

    def create_collection(self, path: str | Path | None = None, *, encoder=None, spec=None,
                          overwrite: bool = False, store: str | None = None):
        """A new empty collection at `path` (default `index.path`) for the project's encoder; `store` (default
        `index.store`) may name Milvus or Qdrant instead of a folder (project_stores.py)."""
        from embedops.index import Collection

        url = self.store_url(store)
        if url.engine != "faiss":
            return self._remote_collection("create", url, path, encoder=encoder, spec=spec, overwrite=overwrite)
        target = self.config.resolve(path or self.config.index.path)
        checks.writable_target(target, "path", folder=True)
        col = Collection.create(target, encoder or self.encoder, spec=spec or self.index_spec(), overwrite=overwrite)
        with self._lock:
            old = self._collections.pop(target.resolve(), None)
            self._collections[target.resolve()] = col
        if old is not None and old is not col:
            old.close()
        return col

    def build_collection(self, documents, path: str | Path | None = None, *, encoder=None, spec=None,
                         overwrite: bool = False, vectors=None, show_progress: bool = False,
                         store: str | None = None):
        """Build a collection in a temporary sibling folder and swap it in only when complete.

        An error or Ctrl-C leaves the previous collection (or nothing), never an empty shell. In Milvus or Qdrant
        (`store`, default `index.store`) it fills a new collection and moves the name to it when complete.
        """
        from embedops.index import Collection

        url = self.store_url(store)
        if url.engine != "faiss":
            checks.positive_int(self.config.model.batch_size, "model.batch_size")
            return self._remote_collection("build", url, path, documents=documents, encoder=encoder, spec=spec,
                                           overwrite=overwrite, vectors=vectors, show_progress=show_progress)
        target = self.config.resolve(path or self.config.index.path)
        checks.writable_target(target, "path", folder=True)
        checks.positive_int(self.config.model.batch_size, "model.batch_size")
        col = Collection.build(target, encoder or self.encoder, documents, vectors=vectors,
                               spec=spec or self.index_spec(), overwrite=overwrite,
                               batch_size=self.config.model.batch_size, show_progress=show_progress)
        with self._lock:
            old = self._collections.pop(target.resolve(), None)
            self._collections[target.resolve()] = col
        if old is not None and old is not col:
            with contextlib.suppress(Exception):  # it was replaced on disk: nothing of it is left to flush
                old.close()
        return col

    def open_collection(self, path: str | Path | None = None, *, repair: bool = False, read_only: bool = False,
                        loader: Callable[[dict[str, Any]], Any] | None = None, store: str | None = None):
        """An existing collection (shared per folder); its recorded encoder is loaded when first needed.

        `repair` brings it back to its last committed state first; `read_only` opens it for search only (a read-only
        folder or mount), never shared with writers. `loader` replaces `encoder_from_spec` for a collection opened
        here first (the server passes its batching workers, so queries join the batches).
        """
        loader = loader or self.encoder_from_spec
        from embedops.index import Collection

        url = self.store_url(store)
        if url.engine != "faiss":  # the engine keeps its own state: nothing to repair, one handle serves readers
            return self._remote_collection("open", url, path, loader=loader, read_only=read_only)

        target = self.config.resolve(path or self.config.index.path)
        if read_only:
            return Collection.open(target, loader=loader, read_only=True)
        key = target.resolve()
        with self._lock:
            if repair:
                old = self._collections.pop(key, None)
                if old is not None:
                    old.close()
                Collection.repair(target)
            col = self._collections.get(key)
            if col is None:
                col = Collection.open(target, loader=loader)
                self._collections[key] = col
        return col

    def index(self, documents=None, *, path: str | Path | None = None, overwrite: bool = False,
              show_progress: bool = False):
        """Build the project's collection (index section) from `documents` or the first data source."""
        from embedops.data import read_documents

        if documents is None:
            src = self.source()
            if src.format == "images":  # a folder of images: an image collection (project_images.py)
                return self.index_images(self.config.resolve(src.path), path, overwrite=overwrite,
                                         show_progress=show_progress)
            documents = read_documents(self.config.resolve(src.path), text_field=src.text_field,
                                       id_field=src.id_field)
        return self.build_collection(documents, path, overwrite=overwrite, show_progress=show_progress)

    @property
    def collection(self):
        """The project's collection, opened from `index.path` (refused if built with another model)."""
        return self.open_collection()

    def search(self, query: str, k: int = 10, filter=None, *, mode: str | None = None, fusion: str | None = None,
               path: str | Path | None = None, query_vector=None):
        """Search a collection by text (dense, keyword or hybrid; mode and fusion default from `index:`)."""
        checks.non_empty_text(query, "query")
        checks.positive_int(k, "k", optional=False)
        checks.choice(mode, ("dense", "keyword", "hybrid"), "mode")
        checks.choice(fusion, ("minmax", "rrf"), "fusion")
        col = self.open_collection(path)
        return col.search(query, k, filter, mode=mode or self.config.index.search_mode,
                          fusion=fusion or self.config.index.fusion, query_vector=query_vector)

    def recommend(self, positive_ids, negative_ids=(), k: int = 10, filter=None, *, path: str | Path | None = None):
        """More like `positive_ids`, less like `negative_ids`."""
        if isinstance(positive_ids, str) or not positive_ids:
            raise InputError("give a non-empty list of document ids", where="positive_ids")
        checks.positive_int(k, "k", optional=False)
        return self.open_collection(path).recommend(positive_ids, negative_ids, k, filter)

    def close(self) -> None:
        """Close every collection this project opened (flushes checkpoints and keyword indexes) and the event log."""
        with self._lock:
            cols, self._collections = list(self._collections.values()), {}
        for col in cols:
            col.close()
        self.close_events()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- quantisation (embedops.models.quantize, gated by embedops.eval.quant_gate) -------------------
    def quantize(self, model: str | None | object = _UNSET, *, calibration: list[str], recipe=None, sts=None,
                 retrieval=None, threads: int | None = None, backend: str | None = None):
        """int8 model (ONNX dynamic, or OpenVINO static via NNCF) behind the `quantization:` gate.

        `backend` None picks what `embedops quantize` does: the file's onnx/openvino backend, else the recommended
        openvino static int8, falling back to onnx dynamic int8 when its extra or enough calibration texts are missing.
        """
        from embedops.eval.quant_gate import metric_checks
        from embedops.models.quantize import DEFAULT_RECIPE, choose_backend, quantize_model

        gate = self.config.quantization
        name = self.config.model.name if model is _UNSET else model
        extra = metric_checks(sts=sts, retrieval=retrieval, gate=gate) if (sts or retrieval) else None
        if backend is None and self.config.model.backend in ("onnx", "openvino"):
            backend = self.config.model.backend
        if backend is not None and backend not in ("onnx", "openvino"):
            raise InputError(f"quantize supports the onnx and openvino backends, not {backend!r}", where="backend")
        backend, _ = choose_backend(backend, calibration_texts=len(calibration))
        if recipe is None and backend == "onnx":
            recipe = DEFAULT_RECIPE
        return quantize_model(name, calibration=calibration, recipe=recipe, gate=gate, extra_checks=extra,
                              threads=threads, resolver=self.resolver(), backend=backend)

    # -- training and the registry (embedops.train, embedops.registry) --------------------------
    def train_params(self, **overrides: Any):
        """TrainParams from the `training:` section, with overrides (None keeps the file's value)."""
        from embedops.train import TrainParams

        t = self.config.training
        values = {"epochs": t.epochs, "batch_size": t.batch_size, "learning_rate": t.learning_rate,
                  "warmup_ratio": t.warmup_ratio, "max_seq_length": t.max_tokens, "loss": t.loss,
                  "mini_batch_size": t.mini_batch_size, "matryoshka_dims": tuple(t.matryoshka_dims),
                  "hard_negatives": t.hard_negatives, "checkpoint_steps": t.checkpoint_steps, "seed": t.seed}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values["loss"] not in ("mnrl", "cached_mnrl"):
            raise InputError(f"unknown loss {values['loss']!r} (use mnrl or cached_mnrl)", where="training.loss")
        return TrainParams(**values)

    def train(self, data: str | Path, *, base: str | None = None, name: str | None = None,
              alias: str | None = "challenger", force: bool = False, gate: bool = True,
              params=None, eval_split: str | None | object = _UNSET, eval_fraction: float | None = None,
              echo=print, **options: Any):
        """Train -> evaluate -> gate (success criteria) -> register -> promote `alias` if the gate passed.

        The gate's result is written in the version's manifest; a failing version is registered but the alias
        is not moved unless `force` (a forced promotion is recorded too). Returns the RunReport.
        """
        from embedops.train import run_training

        t = self.config.training
        base = base if base is not None else (t.base_model or self.config.model.name)
        report = run_training(
            data, base=base, name=name or t.name, registry_root=self.registry_root,
            params=params or self.train_params(),
            eval_split=t.eval_split if eval_split is _UNSET else eval_split,
            eval_fraction=t.eval_fraction if eval_fraction is None else eval_fraction,
            alias=None, resolver=self.resolver(), echo=echo, **options)
        version = report.version
        if version is None:
            return report
        version = self.gate_and_promote(version, alias, force=force, gate=gate, echo=echo)
        report.version = version
        report.manifest = version.manifest
        return report

    def gate_and_promote(self, version, alias: str | None, *, force: bool = False, gate: bool = True, echo=print):
        """The end of `train` for a just registered version: record its gate result, move `alias` if it passed."""
        if gate:
            tuned = self.load_encoder(str(version.path), backend="torch")
            result = self.gate(tuned)
            version = self.registry.record_gate(version.ref, result)
            echo(f"quality gate: {'passed' if result['passed'] else 'FAILED'} ({result['summary']})")
        if alias:
            from embedops.registry import GateRefusedError

            try:
                version = self.registry.promote(version.ref, alias, force=force)
            except GateRefusedError as exc:
                echo(f"not promoted: {exc}")
        return version

    def promote(self, spec: str, alias: str = "champion", *, force: bool = False, gate: bool = True):
        """Point `alias` at a version after the quality gate (measured now when the manifest has none)."""
        registry = self.registry
        version = registry.verify(spec)  # gate the files as registered, never ones changed in place since
        if gate and "gate" not in version.manifest:
            result = self.gate(self.load_encoder(str(version.path.resolve()), backend="torch"))
            version = registry.record_gate(version.ref, result)
        return registry.promote(version.ref, alias, force=force)

    def rollback(self, alias: str = "champion"):
        """Point `alias` back at the version that held it before."""
        return self.registry.rollback(alias)
