"""Success criteria: 'metric op threshold' strings such as 'ndcg@10 >= 0.65' or 'p95_latency_ms <= 50'."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from embedops.config.checks import RETRIEVAL_HELP, is_retrieval_metric

# What `embedops check` can measure besides the retrieval metrics (ndcg@k ...); anything else is a typo to refuse.
NAMED_METRICS = ("sts_spearman", "sts_pearson", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms",
                 "throughput_per_s", "memory_mb", "model_size_mb", "dimension")
VALID_METRICS = f"{RETRIEVAL_HELP}, {', '.join(NAMED_METRICS)}"

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_CRITERION = re.compile(r"^\s*([A-Za-z_][\w@.\-]*)\s*(>=|<=|==|>|<)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Criterion:
    """One threshold on one named metric."""

    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Criterion:
        """Parse 'metric op number'; raises ValueError with the expected form or the valid metric names."""
        m = _CRITERION.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a criterion; write it as 'metric >= number' (ops: >=, <=, >, <, ==)")
        metric = m.group(1).lower()
        if metric.startswith("p@"):
            metric = "precision@" + metric[2:]
        if not (metric in NAMED_METRICS or is_retrieval_metric(metric)):
            raise ValueError(f"{text!r}: unknown metric {metric!r} (or a cut-off below 1); valid: {VALID_METRICS}")
        return cls(metric=metric, op=m.group(2), threshold=float(m.group(3)))

    def passes(self, value: float) -> bool:
        """True when the measured value meets the threshold."""
        return bool(_OPS[self.op](value, self.threshold))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"
