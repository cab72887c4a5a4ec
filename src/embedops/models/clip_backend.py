"""CLIP-style encoders: texts and images in one space, so a text query searches an image collection.

    openai/clip-vit-base-patch32 (a hub id in the local cache), or a folder with a CLIP config.json:
        transformers' CLIPModel (no torchvision needed); our Pillow pipeline with the folder's
        preprocessor_config.json recipe (shortest edge, crop, CLIP mean/std, bicubic)
    open_clip:ViT-B-32/laion2b_s34b_b79k
        open_clip's create_model_and_transforms (the `vision` extra: open_clip needs torchvision), its
        model.visual.preprocess_cfg recipe and its own tokenizer

A plain `str` input is text (tokenised, cut at the text tower's max tokens, which keep the end-of-text token the
pooled output reads); everything image-like is an image. Texts and images of one call may be mixed: each batch runs
the two towers on its own rows. Vectors are the projected embeddings, L2-normalised by the shared post-processing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.data.images import DEFAULT_MAX_PIXELS, Preprocess, preprocess_from_hf
from embedops.errors import ModelError
from embedops.models.identity import source_weights_hash
from embedops.models.image_base import ImageEncoder, state_dict_hash
from embedops.models.loading import ModelSource, resolve_model

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_DEFAULT = Preprocess(size=224, resize=224, mean=CLIP_MEAN, std=CLIP_STD, resample="bicubic")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false")


def _pooled(out: Any) -> Any:
    """transformers 5 returns an output object whose pooler_output is the projected embedding; 4.x a tensor."""
    return out if hasattr(out, "dim") else out.pooler_output


def _local_file(source: ModelSource, name: str) -> Path | None:
    """A file of the model folder, or of its cached hub snapshot (never downloads)."""
    if source.path is not None:
        p = source.path / name
        return p if p.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(source.hf_id), name)
    except Exception:  # noqa: BLE001 - no hub library or a malformed id: no file
        return None
    return Path(found) if isinstance(found, str) else None


class _TextMixin:
    """Token counting and truncation shared by the CLIP backends (ids kept with their end-of-text token)."""

    reads_text = True
    max_tokens: int
    eos_id: int
    pad_id: int

    def cut(self, ids: list[int]) -> list[int]:
        """Ids cut at max_tokens, keeping the end-of-text token last (what the tokenizer's truncation does)."""
        return ids if len(ids) <= self.max_tokens else ids[: self.max_tokens - 1] + [ids[-1]]

    def padded(self, ids: list[list[int]], torch: Any, device: str) -> tuple[Any, Any]:
        """Token ids and attention mask, right-padded to the longest row."""
        width = max(len(r) for r in ids)
        arr = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, r in enumerate(ids):
            arr[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return torch.from_numpy(arr).to(device), torch.from_numpy(mask).to(device)


class ClipEncoder(_TextMixin, ImageEncoder):
    """transformers' CLIPModel from a folder or a cached hub id: image and text towers, projected embeddings."""

    library = "transformers-clip"

    def __init__(self, model: str | ModelSource, *, device: str = "cpu", truncate_dim: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_tokens: int | None = None, **_: Any):
        source = model if isinstance(model, ModelSource) else resolve_model(
            model[5:] if isinstance(model, str) and model.startswith("clip:") else model)
        import transformers

        local = _offline() or source.path is not None
        try:
            clip = transformers.CLIPModel.from_pretrained(source.location, local_files_only=local)
            tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, local_files_only=local)
        except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, hub errors ...
            hint = "HF_HUB_OFFLINE=1 is set and the model is not in the local cache" if _offline() else None
            raise ModelError(f"cannot load CLIP model {source.name!r}: {exc}", hint=hint) from exc
        recipe_file = _local_file(source, "preprocessor_config.json")
        preprocess = (preprocess_from_hf(json.loads(recipe_file.read_text(encoding="utf-8")), CLIP_DEFAULT)
                      if recipe_file is not None else CLIP_DEFAULT)
        size = int(clip.config.vision_config.image_size)
        if preprocess.size != size:
            raise ModelError(f"the preprocessor crops {preprocess.size} pixels but the vision tower takes {size}",
                             where=str(recipe_file))
        location = str(source.path) if source.path is not None else str(source.hf_id)
        vision, text = clip.config.vision_config, clip.config.text_config
        architecture = (f"clip vision {vision.hidden_size}x{vision.num_hidden_layers} patch {vision.patch_size}, "
                        f"text {text.hidden_size}x{text.num_hidden_layers}")
        super().__init__(name=source.name, location=location, architecture=architecture, preprocess=preprocess,
                         device=device, truncate_dim=truncate_dim, max_pixels=max_pixels)
        self.source = source
        self.model = clip.eval().to(device)
        self.tokenizer = tokenizer
        # Fix the fast tokenizer's truncation/padding state now (the one every call uses), so that callers on many
        # threads never change it concurrently ("Already borrowed").
        tokenizer("warm up", add_special_tokens=True, truncation=False, padding=False, verbose=False)
        self.dimension = int(clip.config.projection_dim)
        limit = int(clip.config.text_config.max_position_embeddings)
        self.max_tokens = min(limit, int(max_tokens)) if max_tokens else limit
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        self.check_truncate_dim()

    def weights_identity(self) -> str:
        """Content hash of the model folder's weights, config and tokenizer files."""
        return source_weights_hash(self.source)

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
        """Untruncated counts (special tokens included) and the ids run (cut at max_tokens)."""
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=False, padding=False, verbose=False)
        ids = [list(r) for r in enc["input_ids"]]
        return np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids)), [self.cut(r) for r in ids]

    def forward_images(self, pixels: Any) -> Any:
        """Projected image embeddings."""
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def forward_texts(self, ids: list[list[int]]) -> Any:
        """Projected text embeddings."""
        input_ids, mask = self.padded(ids, self._torch, self.device)
        return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=mask))


class OpenClipEncoder(_TextMixin, ImageEncoder):
    """An open_clip model `open_clip:ARCH/PRETRAINED` whose weights are in the local cache."""

    library = "open_clip"

    def __init__(self, name: str, *, device: str = "cpu", truncate_dim: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, **_: Any):
        spec = name.split(":", 1)[1] if name.startswith("open_clip:") else name
        arch, _, tag = spec.partition("/")
        open_clip = require("open_clip", "vision")
        try:
            model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=tag or None)
            tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # noqa: BLE001 - unknown name/tag, weights not cached offline
            raise ModelError(f"cannot load open_clip model {spec!r}: {exc}",
                             hint="the weights must be in the local cache (nothing is downloaded offline)") from exc
        cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        size = cfg.get("size", 224)
        size = int(size[-1] if isinstance(size, list | tuple) else size)
        # open_clip's eval transform resizes the shortest side to the crop size, then centre-crops.
        preprocess = Preprocess(size=size, resize=size, mean=tuple(cfg.get("mean") or CLIP_MEAN),
                                std=tuple(cfg.get("std") or CLIP_STD),
                                resample=str(cfg.get("interpolation") or "bicubic"))
        super().__init__(name=f"open_clip:{spec}", location=f"open_clip:{spec}", architecture=spec,
                         preprocess=preprocess, device=device, truncate_dim=truncate_dim, max_pixels=max_pixels)
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.dimension = int(getattr(model.visual, "output_dim", 0) or model.text_projection.shape[-1])
        self.max_tokens = int(getattr(tokenizer, "context_length", 77))
        self.eos_id = int(getattr(tokenizer, "eot_token_id", 0))
        self.pad_id = 0
        self._weights_id = state_dict_hash(model.state_dict())
        self.check_truncate_dim()

    def weights_identity(self) -> str:
        """Hash of the loaded state dict."""
        return self._weights_id

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
        """open_clip's tokenizer pads to its context length: rows are stripped of padding to count them."""
        rows = self.tokenizer(texts).tolist()
        ids = [[t for t in r if t != self.pad_id] for r in rows]
        return np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids)), [self.cut(r) for r in ids]

    def forward_images(self, pixels: Any) -> Any:
        """Projected image embeddings."""
        return self.model.encode_image(pixels)

    def forward_texts(self, ids: list[list[int]]) -> Any:
        """Projected text embeddings (open_clip pads to its fixed context length itself)."""
        torch = self._torch
        arr = np.full((len(ids), self.max_tokens), self.pad_id, dtype=np.int64)
        for i, r in enumerate(ids):
            arr[i, : len(r)] = r
        return self.model.encode_text(torch.from_numpy(arr).to(self.device))
