"""Reports: JSON (everything), Markdown (a table to paste), PNG (a plot people would rather look at)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_open, atomic_write_json, atomic_write_text
from embedops.eval.significance import PairedComparison


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _save_png(fig, path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_metrics_report(out_dir: str | Path, title: str, metrics: dict[str, float], info: dict[str, Any],
                         extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """report.json + report.md + report.png (bar chart of the metrics) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "png": out / "report.png"}
    atomic_write_json(paths["json"], {"title": title, "metrics": metrics, "info": info, **(extra or {})})
    md = f"# {title}\n\n" + markdown_table(["metric", "value"], [[k, v] for k, v in metrics.items()])
    md += "\n" + markdown_table(["fact", "value"], [[k, v] for k, v in info.items()])
    atomic_write_text(paths["markdown"], md)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [k for k, v in metrics.items() if isinstance(v, float)]
    values = [metrics[k] for k in names]
    bars = ax.bar(names, values, color="#3b7dd8")
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize=9)
    ax.set_ylim(0, max(1.0, max(values, default=1) * 1.1))
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    _save_png(fig, paths["png"])
    plt.close(fig)
    return paths


def write_comparison_report(out_dir: str | Path, name_a: str, name_b: str, comparisons: list[PairedComparison],
                            diffs: dict[str, np.ndarray]) -> dict[str, Path]:
    """compare.json + compare.md + compare.png (sorted per-query differences with the CI) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "markdown": out / "compare.md", "png": out / "compare.png"}
    atomic_write_json(paths["json"], {"a": name_a, "b": name_b, "comparisons": [c.as_dict() for c in comparisons]})
    rows = [[c.metric, c.mean_a, c.mean_b, c.diff, f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", f"{c.p_value:.4f}",
             f"{c.wins}/{c.losses}/{c.ties}"] for c in comparisons]
    md = f"# {name_b} vs {name_a}\n\n" + markdown_table(
        ["metric", "A", "B", "B - A", "95% CI", "p (randomization)", "wins/losses/ties"], rows)
    atomic_write_text(paths["markdown"], md)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(comparisons), figsize=(4.2 * len(comparisons), 3.2), squeeze=False)
    for ax, c in zip(axes[0], comparisons, strict=True):
        d = np.sort(diffs[c.metric])
        ax.bar(np.arange(len(d)), d, width=1.0, color=np.where(d >= 0, "#2e9e5b", "#d1495b"))
        ax.axhline(c.diff, color="black", lw=1, label=f"mean {c.diff:+.4f}")
        ax.axhspan(c.ci_low, c.ci_high, color="grey", alpha=0.3, label="95% CI")
        ax.set_title(f"{c.metric}: B - A per query", fontsize=10)
        ax.set_xticks([])
        ax.legend(fontsize=8, loc="upper left")
    _save_png(fig, paths["png"])
    plt.close(fig)
    return paths
