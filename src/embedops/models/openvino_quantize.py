"""Static int8 for the openvino backend: NNCF post-training quantisation, accepted only through the quality gate.

Activation ranges are calibrated on the caller's texts (one text per calibration item, so no padding skews them). The
candidate IR is built in a hidden folder beside the accepted one and gated against the fp32 OpenVINO model with the
ONNX path's own `run_gate` (plus the caller's `extra_checks`: STS and retrieval drops); it is installed only if it
passes, and deleted otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json, replace_dir
from embedops._optional import require
from embedops.config.schema import QuantizationGate
from embedops.errors import InputError
from embedops.models.export import ensure_export
from embedops.models.loading import Resolver, resolve_model
from embedops.models.openvino_backend import INFO, IR_XML, OpenVinoEncoder, ir_hash, ir_root, openvino
from embedops.models.quantize import ExtraChecks, GateReport, run_gate

log = logging.getLogger(__name__)

MIN_CALIBRATION_TEXTS = 100
"""Fewer texts than this give activation ranges from too few tokens: the outliers that set them go unseen."""

_PASS_THROUGH = ("Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "FakeQuantize", "FakeConvert")


@dataclass(frozen=True)
class OvQuantRecipe:
    """How NNCF quantises. The default was the fastest recipe that kept quality on all-MiniLM-L6-v2 (STS-B test).

    SmoothQuant (on by default for transformers in NNCF) cost ~1.3 points of mean cosine and a minimum of 0.62 here;
    without it: mean 0.993, min 0.967. The activation-by-activation products of attention (QK^T, AV) stay float: int8
    there bought no speed (2,000 vs 2,100 sentences/s) and a little accuracy. Keeping the FFN down-projections float
    too lifts the minimum cosine to 0.985 at about half the speed (`keep_ffn_output_float=True`).
    """

    method: str = "static-nncf"
    preset: str = "mixed"
    smooth_quant: bool = False
    keep_attention_products_float: bool = True
    ignored_patterns: tuple[str, ...] = ()
    subset_size: int = 300
    fast_bias_correction: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for manifests and reports."""
        return asdict(self)


DEFAULT_OV_RECIPE = OvQuantRecipe()


def _has_weight(node: Any, depth: int = 4) -> bool:
    """Whether this MatMul input comes from a constant (through converts, reshapes or transposes)."""
    for _ in range(depth):
        kind = node.get_type_name()
        if kind == "Constant":
            return True
        if kind not in _PASS_THROUGH:
            return False
        node = node.input_value(0).get_node()
    return False


def activation_matmuls(ov_model: Any) -> list[str]:
    """Names of MatMuls whose both inputs are activations (attention scores and their product with values)."""
    names = []
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "MatMul" and not any(_has_weight(op.input_value(i).get_node()) for i in range(2)):
            names.append(op.get_friendly_name())
    return names


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs every ignored node at INFO; keep errors only for this block."""
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        nncf_logger.setLevel(level)


def nncf_quantize(ir_path: Path, feeds: list[dict[str, Any]], recipe: OvQuantRecipe) -> Any:
    """The NNCF static-int8 version of the IR at `ir_path`, calibrated on `feeds`."""
    ov = openvino()
    nncf = require("nncf", "openvino")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    model = ov.Core().read_model(str(ir_path))
    names = activation_matmuls(model) if recipe.keep_attention_products_float else []
    scope = nncf.IgnoredScope(names=names, patterns=list(recipe.ignored_patterns), validate=False)
    advanced = None if recipe.smooth_quant else AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))  # -1 switches SmoothQuant off
    with _quiet_nncf():
        return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                             preset=nncf.QuantizationPreset(recipe.preset), subset_size=min(recipe.subset_size,
                                                                                            len(feeds)),
                             fast_bias_correction=recipe.fast_bias_correction, ignored_scope=scope,
                             advanced_parameters=advanced)


def check_calibration_size(count: int, gate: QuantizationGate, where: str | None = None) -> None:
    """Refuse fewer than MIN_CALIBRATION_TEXTS texts (or a gate that would cut the sample below it), naming both."""
    if gate.calibration_size < MIN_CALIBRATION_TEXTS:
        raise InputError(f"{gate.calibration_size} is below the {MIN_CALIBRATION_TEXTS} texts that openvino static "
                         "int8 calibration needs", where="quantization.calibration_size")
    if count < MIN_CALIBRATION_TEXTS:
        raise InputError(f"static int8 calibration needs at least {MIN_CALIBRATION_TEXTS} non-empty texts, got "
                         f"{count}", where=where, hint="pass more texts from your own data, e.g. a sample of its "
                         "documents")


def quantize_openvino(
    model: str | None = None,
    *,
    calibration: list[str],
    recipe: OvQuantRecipe = DEFAULT_OV_RECIPE,
    gate: QuantizationGate | None = None,
    extra_checks: ExtraChecks | None = None,
    threads: int | None = None,
    resolver: Resolver | None = None,
) -> GateReport:
    """Convert if needed, quantise with NNCF, gate against the fp32 OpenVINO model; install only if it passes."""
    ov = openvino()
    require("nncf", "openvino")
    gate = gate or QuantizationGate()
    texts = [t for t in calibration if isinstance(t, str) and t.strip()]
    check_calibration_size(len(texts), gate)
    texts = texts[: gate.calibration_size]
    source = resolve_model(model, resolver=resolver)
    report = GateReport(model=source.name, recipe=recipe.as_dict(), calibration_texts=len(texts), backend="openvino")
    started = time.perf_counter()
    exported = ensure_export(source)
    float_enc = OpenVinoEncoder(source, threads=threads)  # converts to fp32 IR first when there is none
    report.seconds["export"] = round(time.perf_counter() - started, 2)
    root = ir_root(exported)
    candidate = Path(tempfile.mkdtemp(prefix=".int8.", suffix=".candidate", dir=root))
    try:
        t0 = time.perf_counter()
        _, encs = float_enc.tokenize_all(texts[: recipe.subset_size])
        feeds = [float_enc.feed([e]) for e in encs]
        quantized = nncf_quantize(float_enc.ir_path, feeds, recipe)
        ov.save_model(quantized, str(candidate / IR_XML), compress_to_fp16=False)
        report.seconds["quantize"] = round(time.perf_counter() - t0, 2)
        quant_enc = OpenVinoEncoder(source, threads=threads)
        quant_enc.use_ir(candidate / IR_XML)
        quant_enc.quantization = "int8"
        t0 = time.perf_counter()
        report.checks = run_gate(float_enc, quant_enc, texts, gate, extra_checks=extra_checks)
        report.seconds["gate"] = round(time.perf_counter() - t0, 2)
        if report.passed:
            report.installed = str(root / "int8" / IR_XML)
            atomic_write_json(candidate / INFO, {"ir_hash": ir_hash(candidate), "openvino": ov.__version__,
                                                 "nncf": require("nncf", "openvino").__version__,
                                                 "gate": report.as_dict()})
            replace_dir(candidate, root / "int8")
    finally:
        shutil.rmtree(candidate, ignore_errors=True)  # a refused candidate is never left behind
    return report
