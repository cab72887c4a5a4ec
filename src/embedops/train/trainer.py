"""Fine-tuning on sentence-transformers' own trainer: MNRL / CachedMNRL / Matryoshka, no-duplicate batches,
checkpoints that a killed run resumes from, and a rich progress bar with ETA."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from embedops.errors import EmbedopsError, InputError, ModelError
from embedops.train.pairs import TrainingSet

log = logging.getLogger(__name__)

LossName = Literal["mnrl", "cached_mnrl"]


@dataclass(frozen=True)
class TrainParams:
    """Training hyper-parameters; the defaults are tuned for a 2-core CPU and a few thousand pairs."""

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # Documents are truncated harder for training than for evaluation (256): attention cost falls
    # quadratically and the rest linearly, while the start of a document carries most of its signal.
    max_seq_length: int = 128
    loss: LossName = "mnrl"
    mini_batch_size: int = 16
    scale: float = 20.0
    matryoshka_dims: tuple[int, ...] = ()
    hard_negatives: int = 1
    checkpoint_steps: int = 20
    seed: int = 42

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the manifest)."""
        out = asdict(self)
        out["matryoshka_dims"] = list(self.matryoshka_dims)
        return out


@dataclass
class TrainOutcome:
    """What a finished training run produced."""

    model_dir: Path
    seconds: float
    steps: int
    epochs: int
    examples: int
    resumed_from: str | None = None
    loss_history: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the manifest)."""
        return {"seconds": round(self.seconds, 1), "steps": self.steps, "epochs": self.epochs,
                "examples": self.examples, "resumed_from": self.resumed_from,
                "final_loss": self.loss_history[-1] if self.loss_history else None}


def load_base_model(base: str | None):
    """Load the model to tune; a folder that is not a sentence-transformers model is an error."""
    from embedops.models.loading import resolve_model
    from embedops.models.torch_backend import load_sentence_transformer

    source = resolve_model(base)
    if source.path is not None and not (source.path / "modules.json").is_file():
        # sentence-transformers would silently bolt mean pooling onto a bare transformer; training
        # that and calling it a tuned embedding model would be a lie.
        raise ModelError(f"{source.path} is not a sentence-transformers model (no modules.json)",
                         hint="give a sentence-transformers model folder or id as the base model")
    return load_sentence_transformer(source), source


def last_checkpoint(folder: Path) -> Path | None:
    """Newest complete checkpoint (trainer_state.json is written last, so a killed save is skipped)."""
    if not folder.is_dir():
        return None
    done = []
    for d in folder.glob("checkpoint-*"):
        suffix = d.name.split("-")[-1]
        if suffix.isdigit() and (d / "trainer_state.json").is_file():
            done.append((int(suffix), d))
    return max(done)[1] if done else None


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "File too large", "os error 28",
                   "os error 27", "os error 122")


def _is_disk_full(exc: BaseException | None) -> bool:
    """True for an out-of-space error, also when a library (safetensors, torch) wrapped it in its own type."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if any(t in str(exc) for t in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _progress_callback(total_hint: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers import TrainerCallback

    from embedops._console import err_console

    class RichProgress(TrainerCallback):
        """A rich bar over optimisation steps with elapsed time, ETA and the latest loss."""

        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task = None
            self.losses: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102 - HF callback API
            self.started = time.perf_counter()
            self.first_step = state.global_step
            self.progress = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.description}"),
                console=err_console, transient=False, disable=not err_console.is_terminal,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=state.max_steps or total_hint,
                                               completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: D102
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))
                if self.progress is not None:
                    self.progress.update(self.task, description=f"loss {float(logs['loss']):.4f}")
                if not err_console.is_terminal:
                    # Logs and pipes get no live bar: print a line per logging step instead.
                    elapsed = time.perf_counter() - self.started
                    done = max(state.global_step - self.first_step, 1)
                    eta = elapsed / done * (state.max_steps - state.global_step)
                    err_console.print(f"step {state.global_step}/{state.max_steps} loss {float(logs['loss']):.4f}"
                                      f" elapsed {elapsed:.0f}s eta {eta:.0f}s", highlight=False)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: D102
            if self.progress is not None:
                self.progress.stop()

    return RichProgress()


def _loss(model, params: TrainParams):
    from sentence_transformers.sentence_transformer import losses

    if params.loss == "mnrl":
        loss = losses.MultipleNegativesRankingLoss(model, scale=params.scale)
    elif params.loss == "cached_mnrl":
        # GradCache: the effective batch is `batch_size`, memory is that of `mini_batch_size`.
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=params.scale,
                                                         mini_batch_size=params.mini_batch_size)
    else:
        raise InputError(f"unknown loss {params.loss!r} (use mnrl or cached_mnrl)")
    if params.matryoshka_dims:
        dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
        dims = sorted({d for d in params.matryoshka_dims if d <= dim} | {dim}, reverse=True)
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss


def train_model(
    base: str | None,
    train: TrainingSet,
    work_dir: str | Path,
    params: TrainParams = TrainParams(),
    *,
    resume: bool = True,
    show_progress: bool = True,
) -> TrainOutcome:
    """Fine-tune `base` on `train`; checkpoints go to work_dir/checkpoints and the model to work_dir/model.

    With `resume`, training continues from the newest complete checkpoint in work_dir (a killed run).
    """
    if len(train) == 0:
        raise InputError("no training examples")
    if len(train) < params.batch_size:
        raise InputError(f"{len(train)} training examples but batch size {params.batch_size}: "
                         "in-batch negatives need at least one full batch",
                         hint=f"use a batch size of at most {len(train)}")
    if params.loss == "cached_mnrl" and params.mini_batch_size > params.batch_size:
        raise InputError("mini_batch_size must not exceed batch_size")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from embedops._console import quiet_libraries

    quiet_libraries()
    work = Path(work_dir)
    ckpt_dir = work / "checkpoints"
    start_from = last_checkpoint(ckpt_dir) if resume else None
    if not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    model, _ = load_base_model(base)
    serve_length = model.max_seq_length
    with contextlib.suppress(AttributeError):
        model.model_card_data.generate_widget_examples = False
    model.max_seq_length = params.max_seq_length
    # Every negative the examples carry (mined or given in the file) becomes a column.
    cols = train.columns()
    dataset = Dataset.from_dict(cols)
    steps_per_epoch = max(1, len(train) // params.batch_size)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float < 1 is a ratio of all steps
        weight_decay=params.weight_decay,
        lr_scheduler_type="linear",
        # Duplicate texts in one batch would be scored as each other's negatives: forbid them.
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        save_steps=params.checkpoint_steps,
        save_total_limit=1,
        logging_steps=max(1, min(10, steps_per_epoch)),
        report_to="none",
        disable_tqdm=True,
        dataloader_drop_last=True,
        seed=params.seed,
        use_cpu=True,
    )
    progress = _progress_callback(steps_per_epoch * params.epochs) if show_progress else None
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=_loss(model, params),
        callbacks=[progress] if progress else None,
    )
    # The model-card callback gathers dataset statistics for a hub README we never publish: skip it.
    trainer.remove_callback(trainer.model_card_callback_class)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
        final = work / "model"
        tmp = work / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # Training truncates harder than inference should: save with the base model's own length.
        model.max_seq_length = serve_length
        model.save(str(tmp))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except Exception as exc:
        if _is_disk_full(exc):
            raise EmbedopsError(f"disk full while training: {exc}", where=str(work),
                                hint="free space and rerun the same command: it resumes from the last "
                                     "checkpoint") from exc
        raise
    seconds = time.perf_counter() - started
    if trainer.state.global_step == 0:
        raise InputError(f"no training step ran: {len(train)} examples give no full batch of "
                         f"{params.batch_size} without a repeated text",
                         hint="lower the batch size or remove duplicate texts")
    losses = list(progress.losses) if progress else [float(h["loss"]) for h in trainer.state.log_history
                                                      if "loss" in h]
    return TrainOutcome(model_dir=work / "model", seconds=seconds, steps=int(trainer.state.global_step),
                        epochs=params.epochs, examples=len(train),
                        resumed_from=start_from.name if start_from else None, loss_history=losses)


def clear_checkpoints(work_dir: str | Path) -> None:
    """Remove a run's work folder once its model is registered."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(work_dir)
