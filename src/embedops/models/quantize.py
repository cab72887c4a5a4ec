"""int8 quantisation of an ONNX export, accepted only through a quality gate against the float model.

The gate compares the candidate with the fp32 ONNX model (itself checked equal to sentence-transformers) on a
calibration sample: mean and minimum cosine, and agreement of the 10 nearest neighbours. Task metrics (STS Spearman
drop, nDCG@10 drop) belong to `eval`, which this package must not import: the caller passes them as `extra_checks`
(`embedops.eval.quant_gate.metric_checks(...)`). A candidate that fails is deleted, never installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedops._optional import require
from embedops.config.schema import QuantizationGate
from embedops.errors import InputError
from embedops.models.export import ExportedModel, ensure_export, record_int8
from embedops.models.loading import Resolver, resolve_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantRecipe:
    """How to quantise. The default was the fastest recipe that kept quality on this project's measurements.

    Per-channel weights keep each output column's own scale (per-tensor scales cost ~5 points of cosine); MatMul
    only leaves the embedding Gather in float (quantising it is what makes onnxruntime's defaults unusable).
    `reduce_range` (7-bit weights) only helps CPUs without VNNI, where u8s8 products can saturate.
    """

    method: Literal["dynamic", "static"] = "dynamic"
    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul",)
    exclude_nodes: tuple[str, ...] = ()
    activation_symmetric: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for manifests and reports."""
        return asdict(self)


DEFAULT_RECIPE = QuantRecipe()

QUANT_BACKENDS: tuple[str, ...] = ("onnx", "openvino")

RECOMMENDED_BACKEND = "openvino"
"""The fastest int8 backend that passes the quality gate (`benchmarks/results/quality_int8.md`): OpenVINO static int8
(NNCF) ran 1.87x / 2.36x ONNX dynamic int8 on STS-B sentences / SciFact abstracts in the same interleaved run, with
STS-B Spearman and SciFact nDCG@10 within 0.5 points of fp32. ONNX dynamic int8 stays the fallback: it needs no extra
and no calibration minimum."""


def openvino_missing() -> str | None:
    """Why the openvino int8 path cannot run here (a missing package, naming the extra), or None when it can."""
    from embedops.errors import MissingDependencyError

    try:
        require("openvino", "openvino")
        require("nncf", "openvino")
    except MissingDependencyError as exc:
        return str(exc)
    return None


def choose_backend(requested: str | None, *, calibration_texts: int, onnx_options: bool = False
                   ) -> tuple[str, str | None]:
    """The backend to quantise for, and a one-line note when the recommended one was passed over (None otherwise).

    An explicit `requested` backend is used as given (openvino raises MissingDependencyError naming the extra when it
    is not installed). Without one: onnx when onnx-only recipe options were given, else the recommended openvino, unless
    its extra is missing or the calibration sample is below its minimum, when onnx dynamic int8 is used instead.
    """
    from embedops.models.openvino_quantize import MIN_CALIBRATION_TEXTS

    if requested is not None:
        if requested not in QUANT_BACKENDS:
            raise InputError(f"must be one of {', '.join(QUANT_BACKENDS)}, got {requested!r}", where="backend")
        if requested == "openvino":
            require("openvino", "openvino")
            require("nncf", "openvino")
        return requested, None
    if onnx_options:
        return "onnx", None
    missing = openvino_missing()
    if missing:
        return "onnx", f"using onnx dynamic int8 because {missing}; the recommended openvino static int8 is faster"
    if calibration_texts < MIN_CALIBRATION_TEXTS:
        return "onnx", (f"using onnx dynamic int8: the recommended openvino static int8 needs at least "
                        f"{MIN_CALIBRATION_TEXTS} calibration texts, got {calibration_texts}")
    return RECOMMENDED_BACKEND, None


def quantize_file(src: Path, dst: Path, recipe: QuantRecipe = DEFAULT_RECIPE,
                  calibration_feeds: list[dict[str, np.ndarray]] | None = None) -> None:
    """Write an int8 version of the ONNX file `src` to `dst` with `recipe`."""
    q = require("onnxruntime.quantization", "onnx")
    exclude = _matching_nodes(src, recipe.exclude_nodes) if recipe.exclude_nodes else []
    common = {"per_channel": recipe.per_channel, "reduce_range": recipe.reduce_range,
              "op_types_to_quantize": list(recipe.op_types), "nodes_to_exclude": exclude,
              "weight_type": q.QuantType.QInt8}
    if recipe.method == "dynamic":
        with quiet_onnxruntime():
            q.quantize_dynamic(str(src), str(dst), **common)
        return
    if not calibration_feeds:
        raise InputError("static quantisation needs calibration inputs")

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration_feeds)

        def get_next(self):  # noqa: D102 - onnxruntime API
            return next(self._it, None)

    with quiet_onnxruntime():
        q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QUInt8 if not recipe.activation_symmetric else q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax,
                          extra_options={"ActivationSymmetric": recipe.activation_symmetric}, **common)


class _FromOnnxRuntime(logging.Filter):
    """Drops records logged by onnxruntime's own modules (it logs advice through the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102 - logging API
        return "onnxruntime" not in Path(record.pathname).parts and not record.name.startswith("onnxruntime")


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Silence onnxruntime's quantisation advice ("consider pre-processing ...") for this block only.

    onnxruntime logs it through the root logger, so a filter on the root logger drops exactly its records, and its own
    `onnxruntime` loggers are raised to ERROR; both are restored after, so no one else's logging changes.
    """
    root = logging.getLogger()
    ort_logger = logging.getLogger("onnxruntime")
    level = ort_logger.level
    noise = _FromOnnxRuntime()
    root.addFilter(noise)
    ort_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeFilter(noise)
        ort_logger.setLevel(level)


def _matching_nodes(path: Path, patterns: tuple[str, ...]) -> list[str]:
    import fnmatch

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if any(fnmatch.fnmatch(n.name, p) for p in patterns)]


@dataclass
class GateCheck:
    """One check: the measured value against its threshold (`at least` or `at most`)."""

    name: str
    value: float
    threshold: float
    rule: Literal["at least", "at most"]
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Whether the value meets the threshold."""
        return self.value >= self.threshold if self.rule == "at least" else self.value <= self.threshold

    @property
    def margin(self) -> float:
        """How far inside (positive) or outside (negative) the threshold the value is."""
        return self.value - self.threshold if self.rule == "at least" else self.threshold - self.value

    def line(self) -> str:
        """One human line: name, value, rule, verdict."""
        verdict = "ok" if self.passed else f"FAILED by {abs(self.margin):.4f}"
        text = f"{self.name}: {self.value:.4f} (must be {self.rule} {self.threshold:.4f}) {verdict}"
        return text + (f" [{self.detail}]" if self.detail else "")


@dataclass
class GateReport:
    """Outcome of quantising one model: the checks, the recipe, speed and where the file went."""

    model: str
    recipe: dict[str, Any]
    checks: list[GateCheck] = field(default_factory=list)
    backend: str = "onnx"
    calibration_texts: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    installed: str | None = None

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (stored in the export manifest when accepted)."""
        return {"model": self.model, "backend": self.backend, "recipe": self.recipe, "passed": self.passed,
                "calibration_texts": self.calibration_texts, "seconds": self.seconds, "installed": self.installed,
                "checks": [{**asdict(c), "passed": c.passed, "margin": c.margin} for c in self.checks]}


def _feeds(encoder, texts: list[str], batch_size: int = 16) -> list[dict[str, np.ndarray]]:
    """Tokenised batches of calibration texts in the graph's input format (for static calibration)."""
    return [encoder.feed(encoder.tokenize_all(texts[i : i + batch_size])[1]) for i in range(0, len(texts), batch_size)]


def _neighbour_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap of each text's k nearest neighbours (itself excluded) under the two models."""
    k = min(k, len(a) - 1)
    if k < 1:
        return 1.0
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    na = np.argpartition(-sa, k - 1, axis=1)[:, :k]
    nb = np.argpartition(-sb, k - 1, axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]))


ExtraChecks = Callable[[Any, Any], list[GateCheck]]
"""More gate checks given (float encoder, int8 candidate encoder): e.g. `eval.quant_gate.metric_checks(...)`."""


def run_gate(float_enc, quant_enc, texts: list[str], gate: QuantizationGate, *,
             extra_checks: ExtraChecks | None = None, batch_size: int = 32) -> list[GateCheck]:
    """Compare the quantised encoder with the float one; every check names its threshold."""
    a = float_enc.encode(texts, batch_size=batch_size)
    b = quant_enc.encode(texts, batch_size=batch_size)
    cos = (a * b).sum(axis=1)
    worst = int(np.argmin(cos))
    checks = [
        GateCheck("mean cosine to float model", float(cos.mean()), gate.min_mean_cosine, "at least",
                  f"{len(texts)} calibration texts"),
        GateCheck("minimum cosine to float model", float(cos.min()), gate.min_min_cosine, "at least",
                  f"worst: calibration text {worst}: {texts[worst][:60]!r}"),
        GateCheck("10-nearest-neighbour agreement", _neighbour_agreement(a, b), gate.min_neighbour_agreement,
                  "at least", "among the calibration texts"),
    ]
    if extra_checks is not None:
        checks.extend(extra_checks(float_enc, quant_enc))
    return checks


def quantize_model(
    model: str | None = None,
    *,
    calibration: list[str],
    recipe: Any = None,
    gate: QuantizationGate | None = None,
    extra_checks: ExtraChecks | None = None,
    threads: int | None = None,
    resolver: Resolver | None = None,
    backend: Literal["onnx", "openvino"] = "onnx",
) -> GateReport:
    """Export if needed, quantise, gate against the float model; install the int8 file only if the gate passes.

    `extra_checks(float_enc, int8_enc)` adds checks to the gate (STS and retrieval drops: `eval.quant_gate`).
    `backend="openvino"` quantises statically with NNCF instead (`openvino_quantize.quantize_openvino`; `recipe` is
    then an `OvQuantRecipe`); the default recipe of each backend is used when `recipe` is None.
    """
    from embedops.models.onnx_backend import OnnxEncoder, make_session

    if backend == "openvino":
        from embedops.models.openvino_quantize import quantize_openvino

        kwargs = {"recipe": recipe} if recipe is not None else {}
        return quantize_openvino(model, calibration=calibration, gate=gate, extra_checks=extra_checks,
                                 threads=threads, resolver=resolver, **kwargs)
    if backend != "onnx":
        raise InputError(f"cannot quantise for backend {backend!r}; choose 'onnx' or 'openvino'")
    recipe = recipe or DEFAULT_RECIPE
    gate = gate or QuantizationGate()
    texts = [t for t in calibration if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise InputError(f"the calibration sample needs at least 2 non-empty texts, got {len(texts)}")
    texts = texts[: gate.calibration_size]
    source = resolve_model(model, resolver=resolver)
    report = GateReport(model=source.name, recipe=recipe.as_dict(), calibration_texts=len(texts))
    started = time.perf_counter()
    exported: ExportedModel = ensure_export(source)  # exports first when there is no (valid) export yet
    report.seconds["export"] = round(time.perf_counter() - started, 2)
    float_enc = OnnxEncoder(source, threads=threads)
    candidate = exported.folder / f".{exported.int8_path.name}.candidate"
    try:
        t0 = time.perf_counter()
        feeds = _feeds(float_enc, texts) if recipe.method == "static" else None
        quantize_file(exported.fp32_path, candidate, recipe, feeds)
        report.seconds["quantize"] = round(time.perf_counter() - t0, 2)
        quant_enc = OnnxEncoder(source, threads=threads)
        quant_enc.session = make_session(str(candidate), threads=quant_enc.threads)
        quant_enc.quantization = "int8"
        t0 = time.perf_counter()
        report.checks = run_gate(float_enc, quant_enc, texts, gate, extra_checks=extra_checks)
        report.seconds["gate"] = round(time.perf_counter() - t0, 2)
        if report.passed:
            os.replace(candidate, exported.int8_path)
            report.installed = str(exported.int8_path)
            record_int8(exported, report.as_dict())
    finally:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()  # a refused candidate is never left behind
    return report
