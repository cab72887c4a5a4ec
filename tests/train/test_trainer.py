"""The trainer on the real bundled model: a few steps on tiny data, losses, bad bases, checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InputError, ModelError
from embedops.models import bundled_default_path, load_encoder
from embedops.train.pairs import TrainingSet
from embedops.train.trainer import TrainParams, last_checkpoint, train_model

from .conftest import similar_pairs

FAST = dict(epochs=1, batch_size=8, max_seq_length=32, checkpoint_steps=100)


def tiny_set(n: int, negatives: bool = False) -> TrainingSet:
    pairs = similar_pairs(2 * n)
    # Negatives come from other pairs than the training ones: a text that is both one row's positive and
    # another's negative cannot share a no-duplicates batch.
    negs = [[pairs[n + i][1]] if negatives else [] for i in range(n)]
    return TrainingSet([a for a, _ in pairs[:n]], [b for _, b in pairs[:n]], negs)


def test_fewer_examples_than_batch_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="5 training examples but batch size 8"):
        train_model(None, tiny_set(5), tmp_path / "run", TrainParams(**FAST))
    assert not (tmp_path / "run" / "model").exists()


def test_base_that_is_not_sentence_transformers(tmp_path: Path) -> None:
    bare = tmp_path / "bare-bert"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (bundled_default_path() / name).exists():
            shutil.copy(bundled_default_path() / name, bare / name)
    with pytest.raises(ModelError, match="not a sentence-transformers model"):
        train_model(str(bare), tiny_set(16), tmp_path / "run", TrainParams(**FAST))


def test_a_few_steps_change_the_model_and_keep_its_length(tmp_path: Path) -> None:
    train = tiny_set(16, negatives=True)
    out = train_model(None, train, tmp_path / "run", TrainParams(**FAST, learning_rate=1e-4), show_progress=False)
    assert out.steps == 2 and out.examples == 16 and out.resumed_from is None
    assert out.loss_history and all(np.isfinite(out.loss_history))
    base, tuned = load_encoder(), load_encoder(str(out.model_dir))
    assert tuned.max_tokens == 256  # trained at 32 tokens, saved with the base model's length
    texts = train.anchors[:4]
    cos = (base.encode(texts) * tuned.encode(texts)).sum(axis=1)
    assert np.all(cos < 0.99999) and np.all(cos > 0.8)  # moved, not destroyed


def test_cached_mnrl_with_matryoshka(tmp_path: Path) -> None:
    params = TrainParams(**FAST, loss="cached_mnrl", mini_batch_size=4, matryoshka_dims=(384, 128, 64))
    out = train_model(None, tiny_set(16), tmp_path / "run", params, show_progress=False)
    assert out.steps == 2 and (out.model_dir / "modules.json").is_file()
    with pytest.raises(InputError, match="mini_batch_size"):
        train_model(None, tiny_set(16), tmp_path / "r2", TrainParams(**{**FAST, "batch_size": 4},
                                                                      loss="cached_mnrl", mini_batch_size=8))


def test_last_checkpoint_skips_an_unfinished_save(tmp_path: Path) -> None:
    ck = tmp_path / "checkpoints"
    (ck / "checkpoint-4").mkdir(parents=True)
    (ck / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (ck / "checkpoint-8").mkdir()  # killed while saving: no trainer_state.json
    assert last_checkpoint(ck).name == "checkpoint-4"
    assert last_checkpoint(tmp_path / "absent") is None
