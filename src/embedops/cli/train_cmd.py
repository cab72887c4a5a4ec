"""`embedops train`: fine-tune a sentence-transformers model and register it with before/after metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import (
    ConfigOpt,
    checked,
    console,
    err_console,
    open_project,
    quiet_libraries,
    resolve_model_early,
)
from embedops.errors import InputError


def _dims(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        dims = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"must be comma-separated integers, got {text!r}", where="--matryoshka") from exc
    if not dims or any(d < 8 for d in dims):
        raise InputError(f"each dimension must be at least 8, got {text!r}", where="--matryoshka")
    return dims


def train(
    data: Annotated[Path, typer.Argument(exists=True, help="Pairs/triplets file (JSONL/CSV/Parquet), BEIR folder, "
                                                           "or feedback.")],
    base: Annotated[str | None, typer.Option("--base", "-m", help="Base model: name, folder, HF id or alias.")] = None,
    name: Annotated[str | None, typer.Option(help="Registry name of the tuned model.")] = None,
    registry: Annotated[Path | None, typer.Option(file_okay=False, help="Registry folder ($EMBEDOPS_REGISTRY or "
                                                                        "./models).")] = None,
    fmt: Annotated[Literal["auto", "pairs", "beir", "feedback"],
                   typer.Option("--format", help="auto, pairs, beir or feedback.")] = "auto",
    split: Annotated[str, typer.Option(help="BEIR qrels split to train on.")] = "train",
    eval_split: Annotated[str | None, typer.Option(help="BEIR split held out for before/after.")] = None,
    eval_fraction: Annotated[float | None, typer.Option(min=0.0, max=0.99, help="Share of queries held out "
                                                                                "otherwise, in [0, 1).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    lr: Annotated[float | None, typer.Option(min=1e-12, max=1.0, help="Peak learning rate.")] = None,
    warmup: Annotated[float | None, typer.Option(min=0.0, max=0.99, help="Warm-up share of all steps, in [0, 1).")]
    = None,
    max_tokens: Annotated[int | None, typer.Option(min=8, help="Training sequence length.")] = None,
    loss: Annotated[Literal["mnrl", "cached_mnrl"] | None,
                    typer.Option(help="mnrl or cached_mnrl (large batch, small memory).")] = None,
    mini_batch_size: Annotated[int | None, typer.Option(min=1, help="cached_mnrl mini-batch.")] = None,
    matryoshka: Annotated[str | None, typer.Option(callback=checked(_dims),
                                                   help="Matryoshka dims, e.g. 384,256,128,64.")] = None,
    hard_negatives: Annotated[int | None, typer.Option(min=0, help="Mined negatives per example (0: none).")] = None,
    checkpoint_steps: Annotated[int | None, typer.Option(min=1, help="Save a checkpoint every N steps.")] = None,
    seed: Annotated[int | None, typer.Option(min=0)] = None,
    corpus: Annotated[Path | None, typer.Option(exists=True, help="Documents (file or BEIR folder): feedback ids, "
                                                                  "mining.")] = None,
    sts: Annotated[Path | None, typer.Option(exists=True, help="STS file: report the Spearman change too.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (e.g. challenger) to point at the new version if it "
                                                "passes the quality gate (the project's success criteria).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Move --alias even if the gate fails (recorded).")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints of an interrupted run.")] = False,
    evaluate: Annotated[bool, typer.Option(help="Run the before/after evaluation.")] = True,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune with MNRL + mined hard negatives; evaluate before/after; gate on the criteria; register."""
    if registry is not None:
        from embedops.config.checks import writable_target

        writable_target(registry, "--registry", folder=True)
    project = open_project(config, registry=registry)
    resolve_model_early(project, base, "--base")
    params = project.train_params(
        epochs=epochs, batch_size=batch_size, learning_rate=lr, warmup_ratio=warmup, max_seq_length=max_tokens,
        loss=loss, mini_batch_size=mini_batch_size, matryoshka_dims=_dims(matryoshka) or None,
        hard_negatives=hard_negatives, checkpoint_steps=checkpoint_steps, seed=seed)
    quiet_libraries()
    echo = lambda m: err_console.print(m, highlight=False)  # noqa: E731 - a one-line sink
    kwargs = {} if eval_split is None else {"eval_split": eval_split}
    report = project.train(
        data, base=base, name=name, alias=alias, force=force, params=params, eval_fraction=eval_fraction,
        fmt=fmt, split=split, sts_path=sts, corpus=corpus, resume=not fresh, evaluate=evaluate, echo=echo,
        **kwargs)
    print_report(report.manifest, report.version.path if report.version else None)


def print_report(manifest: dict, path: Path | None) -> None:
    """Before/after table with the paired test of each metric."""
    from rich.table import Table

    ev = manifest.get("evaluation")
    console.print(f"registered [bold]{manifest.get('ref')}[/] at {path}  "
                  f"(training {manifest.get('training', {}).get('seconds')} s)")
    if ev:
        table = Table(title=f"held-out {ev['dataset']} ({ev['split']}, {ev['queries']} queries)",
                      title_justify="left")
        for col in ("metric", "before", "after", "diff", "95% CI", "p"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for m, c in ev["comparison"].items():
            table.add_row(m, f"{ev['before'][m]:.4f}", f"{ev['after'][m]:.4f}", f"{c['diff']:+.4f}",
                          f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]", f"{c['p_value']:.4f}")
        console.print(table)
    sts = manifest.get("sts")
    if sts:
        console.print(f"STS Spearman {sts['before']:.4f} -> {sts['after']:.4f} (drop {sts['drop_points']:.2f} points)")
    gate = manifest.get("gate")
    if gate:
        verdict = "[green]passed[/]" if gate.get("passed") else "[bold red]FAILED[/]"
        aliases = ", ".join(manifest.get("aliases") or []) or "none"
        console.print(f"quality gate {verdict}: {gate.get('summary')}; aliases: {aliases}")


def register(app: typer.Typer) -> None:
    """Add `embedops train`."""
    app.command("train")(train)
