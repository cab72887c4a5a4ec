"""Which encoder a collection was built with: recorded at create, checked at open, used to load it again.

A collection records the full `Encoder.spec()` (model name and location, weight fingerprint, backend, quantisation,
truncate_dim, prompts ...) under the meta key `encoder`, next to the fingerprint and output dimension it checks. The
index package never loads a model itself: `Collection.open` takes an encoder, or an `EncoderLoader` that turns the
recorded spec back into one. Collections written before the spec was recorded hold `model` facts (name,
dimension, an older path-based fingerprint, backend, location); they still open, checked by name and dimension.
"""

from __future__ import annotations

from typing import Any

from embedops.errors import EmbedopsError, ModelError
from embedops.protocols import Encoder, EncoderLoader

ENCODER_KEY = "encoder"
LEGACY_KEY = "model"
SUMMARY_KEYS = ("backend", "quantization", "truncate_dim", "location")


def record_encoder(encoder: Encoder) -> dict[str, Any]:
    """What a collection stores about its encoder: name, output dimension, fingerprint and the full spec."""
    missing = [a for a in ("spec", "fingerprint", "output_dimension") if not hasattr(encoder, a)]
    if missing:
        raise ModelError(f"{type(encoder).__name__} does not implement the Encoder protocol (missing "
                         f"{', '.join(missing)})", hint="pass an encoder from embedops.models")
    spec = dict(encoder.spec())
    return {"name": encoder.name, "dimension": int(encoder.output_dimension),
            "fingerprint": str(encoder.fingerprint), "spec": spec}


def recorded_encoder(facts: dict[str, Any]) -> dict[str, Any]:
    """The recorded encoder of a collection's facts (the legacy `model` facts converted); {} when none."""
    recorded = facts.get(ENCODER_KEY)
    if recorded:
        return dict(recorded)
    legacy = facts.get(LEGACY_KEY)
    if not legacy:
        return {}
    # The old fingerprint hashed paths and mtimes; it cannot be compared with a content hash, so it is kept apart.
    spec = {k: legacy[k] for k in ("name", "location", "backend") if legacy.get(k) is not None}
    return {"name": legacy.get("name"), "dimension": legacy.get("dimension"), "fingerprint": None,
            "legacy_fingerprint": legacy.get("fingerprint"), "spec": spec}


def summary(recorded: dict[str, Any]) -> dict[str, Any]:
    """Name, dimension, fingerprint, backend, quantisation, truncate_dim and location, for info() and tables."""
    if not recorded:
        return {}
    spec = recorded.get("spec") or {}
    out = {"name": recorded.get("name"), "dimension": recorded.get("dimension"),
           "fingerprint": recorded.get("fingerprint") or recorded.get("legacy_fingerprint")}
    out.update({k: spec.get(k) for k in SUMMARY_KEYS})
    return out


def check_encoder(recorded: dict[str, Any], encoder: Encoder, where: str) -> None:
    """Refuse an encoder whose vector space differs from the recorded one (by fingerprint and dimension)."""
    if not recorded:
        return
    given_dim = int(getattr(encoder, "output_dimension", encoder.dimension))
    given_fp = getattr(encoder, "fingerprint", None)
    if recorded.get("fingerprint"):
        same = given_fp == recorded["fingerprint"] and given_dim == recorded["dimension"]
    else:  # legacy facts: the name and dimension are all that can be compared
        same = encoder.name == recorded.get("name") and given_dim == recorded.get("dimension")
    if not same:
        built_fp = recorded.get("fingerprint") or recorded.get("legacy_fingerprint")
        raise ModelError(
            f"the collection was built with model {recorded.get('name')!r} (dimension {recorded.get('dimension')}, "
            f"fingerprint {built_fp}); the encoder given is {encoder.name!r} (dimension {given_dim}, fingerprint "
            f"{given_fp})", where=where,
            hint="open it with the encoder it was built with (or a loader for its recorded spec), or rebuild the "
                 "collection with the new model")


def load_recorded(recorded: dict[str, Any], loader: EncoderLoader | None, where: str) -> Encoder:
    """The recorded encoder, loaded with `loader` and checked; a ModelError naming what to pass otherwise."""
    if not recorded:
        raise ModelError("this collection records no encoder", where=where,
                         hint="pass one: Collection.open(path, encoder)")
    described = ", ".join(f"{k} {v}" for k, v in summary(recorded).items() if v is not None and k != "name")
    if loader is None:
        raise ModelError(f"no encoder for this collection (built with {recorded.get('name')!r}: {described})",
                         where=where, hint="pass encoder=... or loader=... to Collection.open (e.g. "
                                           "loader=embedops.models.encoder_from_spec)")
    try:
        encoder = loader(dict(recorded.get("spec") or {}))
    except EmbedopsError:
        raise
    except Exception as exc:
        raise ModelError(f"loading the recorded encoder {recorded.get('name')!r} failed: {exc}", where=where) from exc
    check_encoder(recorded, encoder, where)
    return encoder
