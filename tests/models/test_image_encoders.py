"""Image encoders: EfficientNet-Lite0's real ImageNet weights (strict load, its own classifier on real photos), the
Encoder protocol (spec, fingerprint, worker), bad inputs, and CLIP wiring on a tiny RANDOM CLIP (shapes and wiring
only: see the tiny_clip_dir fixture)."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedops.data.images import Preprocess
from embedops.errors import InputError, MissingDependencyError, ModelError
from embedops.models import ModelWorker, encoder_from_spec, is_image_model, load_encoder, load_image_encoder
from embedops.models.efficientnet_lite import TF_LITE_MEAN, TF_LITE_STD, bundled_lite_weights

EXPECTED = {  # ImageNet class ids the issue names for the photos scikit-image ships
    "chelsea.png": ({281, 282, 283, 284, 285}, 5),  # a cat class in the top 5
    "coffee.png": ({967}, 1),  # espresso, top 1
    "rocket.jpg": ({657, 744}, 5),  # missile or projectile in the top 5
    "motorcycle_left.png": ({665, 670}, 5),  # moped or motor scooter in the top 5
}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_lite0_weights_and_recipe_classify_real_photos(image_encoder, photos):
    enc = image_encoder
    assert enc.weights_file == bundled_lite_weights(0) and enc.dimension == 1280 and enc.num_classes == 1000
    # The TF Lite recipe ((x - 127) / 128, i.e. mean/std about 0.5), not the ImageNet statistics.
    assert enc.preprocess.mean == TF_LITE_MEAN and enc.preprocess.std == TF_LITE_STD
    assert abs(enc.preprocess.mean[0] - 0.5) < 0.005 and abs(enc.preprocess.std[0] - 0.5) < 0.005
    files = [photos[name] for name in EXPECTED]
    top = enc.classify(files, top_k=5)
    for (name, (classes, within)), row in zip(EXPECTED.items(), top, strict=True):
        assert classes & {c for c, _ in row[:within]}, f"{name}: top {within} was {row[:within]}"
    # With the ImageNet statistics instead, every expected class gets a lower probability: the recipe matters.
    other = copy.copy(enc)
    other.preprocess = dataclasses.replace(enc.preprocess, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    mine, theirs = enc.logits(files), other.logits(files)
    for i, (classes, _) in enumerate(EXPECTED.values()):
        p_mine = torch.softmax(torch.from_numpy(mine[i]), 0)[sorted(classes)].sum()
        p_theirs = torch.softmax(torch.from_numpy(theirs[i]), 0)[sorted(classes)].sum()
        assert p_mine > p_theirs


def test_weights_that_do_not_fit_are_refused_by_name(image_encoder, tmp_path: Path):
    state = torch.load(bundled_lite_weights(0), map_location="cpu", weights_only=True)
    state.pop("_fc.bias")
    state["_extra.weight"] = torch.zeros(3)
    bad = tmp_path / "lite0-bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError, match=r"1 missing \(_fc.bias\); 1 unexpected \(_extra.weight\)"):
        load_image_encoder(f"efficientnet-lite0:{bad}")
    text = tmp_path / "not-weights.pth"
    text.write_text("hello")
    with pytest.raises(ModelError, match="cannot read the weights file"):
        load_image_encoder(f"efficientnet-lite0:{text}")


def test_spec_reloads_the_same_vector_space(image_encoder, photos):
    spec = image_encoder.spec()
    assert spec["modality"] == "image" and spec["location"] == "efficientnet-lite0" and spec["dimension"] == 1280
    assert spec["preprocess"]["size"] == 224 and spec["library"] == "efficientnet-lite"
    again = encoder_from_spec(spec)
    assert again.fingerprint == image_encoder.fingerprint
    images = [photos["astronaut.png"], photos["coffee.png"]]
    np.testing.assert_allclose(again.encode(images), image_encoder.encode(images), atol=1e-5)
    rand = load_encoder("efficientnet-lite0:random")
    assert rand.fingerprint != image_encoder.fingerprint and rand.spec()["location"] == "efficientnet-lite0:random"
    assert encoder_from_spec(rand.spec()).weights_hash == rand.weights_hash  # the same random weights again
    with pytest.raises(ModelError, match="weights .* changed"):
        encoder_from_spec({**spec, "weights_hash": "0" * 64})
    assert is_image_model("efficientnet-lite0") and not is_image_model("all-MiniLM-L6-v2")


def test_bad_inputs_name_their_index_and_odd_modes_are_embedded(image_encoder, tmp_path: Path):
    fake = tmp_path / "fake.png"
    fake.write_text("not really a png")
    good = png(Image.new("RGB", (40, 30), (10, 200, 30)))
    with pytest.raises(InputError, match="input 1: not an image"):
        image_encoder.encode([good, fake])
    with pytest.raises(InputError, match="input 0 is text, but efficientnet-lite0 embeds images only"):
        image_encoder.encode(["a photo of a cat"])
    with pytest.raises(InputError, match="over the limit"):
        image_encoder.encode([png(Image.new("L", (9000, 9000)))])
    deep = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    rgba = Image.new("RGBA", (50, 20), (255, 0, 0, 128))
    cmyk = Image.new("CMYK", (30, 30), (0, 128, 255, 10))
    vectors = image_encoder.encode([good, Image.new("RGB", (1, 1), (255, 255, 255)), deep, rgba, cmyk])
    assert vectors.shape == (5, 1280) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_worker_batches_concurrent_image_callers(image_encoder, photos):
    names = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"]
    images = [Image.open(photos[n]).convert("RGB").resize((160, 120)) for n in names]
    expected = image_encoder.encode(images)
    results: dict[int, np.ndarray] = {}
    errors: dict[int, Exception] = {}
    with ModelWorker(image_encoder, max_batch_size=8, max_wait_ms=20) as worker:
        def call(i: int) -> None:
            try:
                batch = [images[i % 4], images[(i + 1) % 4]] + (["text"] if i == 5 else [])
                results[i] = worker.encode(batch)
            except Exception as exc:  # noqa: BLE001 - collected per caller
                errors[i] = exc

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = worker.metrics()
    assert set(errors) == {5} and isinstance(errors[5], InputError)  # only the bad caller fails
    for i, vec in results.items():
        np.testing.assert_allclose(vec, expected[[i % 4, (i + 1) % 4]], atol=1e-4)
    assert metrics["texts"] == 10 and metrics["max_batch_size_seen"] >= 4  # callers were merged into batches


def test_tiny_clip_wiring_matches_transformers(tiny_clip_dir, photos):
    """A RANDOM tiny CLIP: only shapes, the shared space and the wiring against transformers' own path are checked."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    enc = load_encoder(str(tiny_clip_dir))
    assert type(enc).__name__ == "ClipEncoder" and enc.reads_text and is_image_model(str(tiny_clip_dir))
    assert enc.dimension == 16 and enc.max_tokens == 16 and enc.preprocess == Preprocess(
        size=32, resize=32, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
    long_text = "a very long caption about a cat on a mat"
    vectors, usage = enc.encode_with_usage(["a cat", photos["chelsea.png"], long_text])
    assert vectors.shape == (3, 16) and usage.truncated_indices == (2,)

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_clip_dir)
    pixels = CLIPImageProcessorPil.from_pretrained(tiny_clip_dir)(
        images=Image.open(photos["chelsea.png"]).convert("RGB"), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref_img = model.get_image_features(pixel_values=pixels)
        ids = tok(["a cat", long_text], padding=True, truncation=True, max_length=16, return_tensors="pt")
        ref_txt = model.get_text_features(**ids)
    ref = [getattr(r, "pooler_output", r) for r in (ref_txt, ref_img)]
    ref = torch.nn.functional.normalize(torch.cat([ref[0][:1], ref[1], ref[0][1:]]), dim=1).numpy()
    cosines = (ref * vectors).sum(axis=1)
    assert cosines[0] > 0.99999 and cosines[2] > 0.99999  # texts: the same tokens, truncation and pooling
    assert cosines[1] > 0.999  # the image: our Pillow pipeline vs transformers' (sub-pixel crop differences)

    again = encoder_from_spec(enc.spec())
    assert again.fingerprint == enc.fingerprint and again.spec()["library"] == "transformers-clip"


@pytest.mark.parametrize("name", ["timm:resnet50", "torchvision:resnet50", "open_clip:ViT-B-32/laion2b_s34b_b79k"])
def test_other_libraries_are_optional_and_never_download(name):
    module = name.split(":")[0]
    if importlib.util.find_spec(module) is None:
        with pytest.raises(MissingDependencyError, match=r"embedops\[vision\]"):
            load_image_encoder(name)
    else:  # installed: weights that are not cached are an error, never a download
        with pytest.raises(ModelError):
            load_image_encoder(name.replace("resnet50", "no-such-model-xyz"))
