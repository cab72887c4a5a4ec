"""Task-metric checks for the int8 quality gate: STS Spearman drop and retrieval nDCG@10 drop.

`models.quantize` runs the gate but must not import `eval`; the caller builds these checks here and passes them in:

    quantize_model(model, calibration=texts, gate=gate, extra_checks=metric_checks(sts=pairs, gate=gate))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedops.config.schema import QuantizationGate
from embedops.data.beir import BeirDataset
from embedops.data.sts import StsPairs
from embedops.eval.runner import evaluate_retrieval, evaluate_sts
from embedops.models.quantize import GateCheck


def metric_checks(*, sts: StsPairs | None = None, retrieval: BeirDataset | None = None,
                  gate: QuantizationGate | None = None, batch_size: int = 32
                  ) -> Callable[[Any, Any], list[GateCheck]]:
    """Checks (float encoder, int8 encoder) -> STS Spearman and nDCG@10 drops, each against `gate.max_metric_drop`."""
    limit = (gate or QuantizationGate()).max_metric_drop

    def checks(float_enc: Any, quant_enc: Any) -> list[GateCheck]:
        out: list[GateCheck] = []
        if sts is not None:
            fs = evaluate_sts(float_enc, sts, batch_size=batch_size, use_cache=False)["spearman"]
            qs = evaluate_sts(quant_enc, sts, batch_size=batch_size, use_cache=False)["spearman"]
            out.append(GateCheck("STS Spearman drop", fs - qs, limit, "at most",
                                 f"float {fs:.4f}, int8 {qs:.4f}, {len(sts.scores)} pairs"))
        if retrieval is not None:
            fr = evaluate_retrieval(float_enc, retrieval, metrics=("ndcg@10",), use_cache=False).metrics["ndcg@10"]
            qr = evaluate_retrieval(quant_enc, retrieval, metrics=("ndcg@10",), use_cache=False).metrics["ndcg@10"]
            out.append(GateCheck("retrieval nDCG@10 drop", fr - qr, limit, "at most",
                                 f"float {fr:.4f}, int8 {qr:.4f}, {len(retrieval.queries)} queries, "
                                 f"{len(retrieval.corpus)} documents"))
        return out

    return checks
