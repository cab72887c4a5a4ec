"""A tiny but real sentence-transformers model (a 1-layer, 32-wide BERT with the bundled model's tokenizer).

Random weights, ~4 MB: it loads, encodes and trains like any model, so crash tests can register, load and train
it dozens of times in seconds, where the bundled 90 MB model would cost a second and a copy per round.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def make_tiny_model(dst: Path, seed: int = 0) -> Path:
    """Write the tiny model to `dst` (a new folder) and return it."""
    import torch
    from transformers import BertConfig, BertModel

    from embedops.models import bundled_default_path

    src = bundled_default_path()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    dst.mkdir(parents=True)
    BertModel(config).save_pretrained(dst, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, dst / name)
    (dst / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (dst / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (dst / "1_Pooling").mkdir()
    (dst / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                               "pooling_mode_mean_tokens": True}))
    (dst / "2_Normalize").mkdir()
    return dst
