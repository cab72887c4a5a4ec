"""`embedops train`: fine-tune a sentence-transformers model and register it with before/after metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedops.cli._common import console, err_console, quiet_libraries
from embedops.errors import InputError


def _dims(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"--matryoshka must be comma-separated integers, got {text!r}") from exc


def train(
    data: Annotated[Path, typer.Argument(help="Pairs/triplets file (JSONL/CSV/Parquet), BEIR folder, or feedback.")],
    base: Annotated[str | None, typer.Option("--base", "-m", help="Base model: name, folder, HF id or alias.")] = None,
    name: Annotated[str | None, typer.Option(help="Registry name of the tuned model.")] = None,
    registry: Annotated[Path | None, typer.Option(help="Registry folder ($EMBEDOPS_REGISTRY or ./models).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, pairs, beir or feedback.")] = "auto",
    split: Annotated[str, typer.Option(help="BEIR qrels split to train on.")] = "train",
    eval_split: Annotated[str | None, typer.Option(help="BEIR split held out for before/after.")] = None,
    eval_fraction: Annotated[float | None, typer.Option(help="Share of queries held out otherwise.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    warmup: Annotated[float | None, typer.Option(help="Warm-up share of all steps.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Training sequence length.")] = None,
    loss: Annotated[str | None, typer.Option(help="mnrl or cached_mnrl (large batch, small memory).")] = None,
    mini_batch_size: Annotated[int | None, typer.Option(help="cached_mnrl mini-batch.")] = None,
    matryoshka: Annotated[str | None, typer.Option(help="Matryoshka dims, e.g. 384,256,128,64.")] = None,
    hard_negatives: Annotated[int | None, typer.Option(help="Mined negatives per example (0: none).")] = None,
    checkpoint_steps: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    corpus: Annotated[Path | None, typer.Option(help="Documents (file or BEIR folder): feedback ids, mining.")] = None,
    sts: Annotated[Path | None, typer.Option(help="STS file: report the Spearman change too.")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias (e.g. challenger) at the new version.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints of an interrupted run.")] = False,
    evaluate: Annotated[bool, typer.Option(help="Run the before/after evaluation.")] = True,
    config: Annotated[Path | None,
                      typer.Option("--config", "-c", help="embedops.yaml with a training section.")] = None,
) -> None:
    """Fine-tune with MNRL + mined hard negatives; evaluate before/after; register the version."""
    from embedops.registry import default_registry_root
    from embedops.train import TrainParams, run_training

    quiet_libraries()
    cfg = None
    if config is not None:
        from embedops.config import load_config

        project = load_config(config)
        cfg = project.training
        if registry is None:
            registry = project.resolve(project.registry)
    if cfg is None:
        from embedops.config.schema import TrainingConfig

        cfg = TrainingConfig()

    def pick(value, default):
        return default if value is None else value

    loss_name = pick(loss, cfg.loss)
    if loss_name not in ("mnrl", "cached_mnrl"):
        raise InputError(f"unknown loss {loss_name!r} (use mnrl or cached_mnrl)")
    params = TrainParams(
        epochs=pick(epochs, cfg.epochs), batch_size=pick(batch_size, cfg.batch_size),
        learning_rate=pick(lr, cfg.learning_rate), warmup_ratio=pick(warmup, cfg.warmup_ratio),
        max_seq_length=pick(max_tokens, cfg.max_tokens), loss=loss_name,
        mini_batch_size=pick(mini_batch_size, cfg.mini_batch_size),
        matryoshka_dims=_dims(matryoshka) or tuple(cfg.matryoshka_dims),
        hard_negatives=pick(hard_negatives, cfg.hard_negatives),
        checkpoint_steps=pick(checkpoint_steps, cfg.checkpoint_steps), seed=pick(seed, cfg.seed),
    )
    root = registry or default_registry_root()
    report = run_training(
        data, base=pick(base, cfg.base_model), name=pick(name, cfg.name), registry_root=root, params=params,
        fmt=fmt, split=split, eval_split=pick(eval_split, cfg.eval_split),
        eval_fraction=pick(eval_fraction, cfg.eval_fraction), sts_path=sts, alias=alias, corpus=corpus,
        resume=not fresh,
        evaluate=evaluate, echo=lambda m: err_console.print(m, highlight=False),
    )
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


def register(app: typer.Typer) -> None:
    """Add `embedops train`."""
    app.command("train")(train)
