"""Images over HTTP against a real `embedops serve` process: data-URL inputs, raw uploads, search by image, limits."""

from __future__ import annotations

import base64
import io
import shutil
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from .conftest import Server

MAX_BODY = 200_000


def jpeg(path, size=(160, 120)) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").resize(size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def bomb_png(side: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def image_server(tmp_path_factory, image_encoder, photos):
    """A server for efficientnet-lite0 with a collection `photos` built by the library (4 labelled images)."""
    from embedops import Project

    root = tmp_path_factory.mktemp("image-serve")
    folder = root / "shots"
    for label, names in (("cats", ["chelsea.png"]), ("things", ["coffee.png", "rocket.jpg", "astronaut.png"])):
        (folder / label).mkdir(parents=True)
        for name in names:
            shutil.copy(photos[name], folder / label / name)
    Project().index_images(folder, root / "collections" / "photos", encoder=image_encoder).close()
    srv = Server(["--model", "efficientnet-lite0", "--collections-root", str(root / "collections"), "--no-auth",
                  "--max-body-bytes", str(MAX_BODY)], root)
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture()
def http(image_server):
    with httpx.Client(base_url=image_server.url, timeout=120) as c:
        yield c


def test_data_url_inputs_match_the_library(http, image_encoder, photos):
    images = [jpeg(photos["coffee.png"]), jpeg(photos["rocket.jpg"])]
    res = http.post("/v1/embeddings", json={"model": "efficientnet-lite0", "input": [data_url(i) for i in images]})
    assert res.status_code == 200, res.text
    got = np.array([d["embedding"] for d in res.json()["data"]], dtype=np.float32)
    assert got.shape == (2, 1280)
    np.testing.assert_allclose(got, image_encoder.encode(images), atol=1e-4)
    models = http.get("/v1/models").json()["data"]
    assert models[0]["id"] == "efficientnet-lite0" and models[0]["dimension"] == 1280


@pytest.mark.parametrize(("bad", "message"), [
    ("data:image/png;base64,@@not base64@@", "base64 is invalid"),
    (data_url(b"just some text, not an image", "image/png"), "not an image Pillow can read"),
    (data_url(b"hello", "text/plain"), "holds text/plain, not an image"),
    (data_url(bomb_png(20_000), "image/png"), "too large|over the limit"),
    ("a photo of a cat", "input\\[1\\] is text, but the model 'efficientnet-lite0' embeds images"),
])
def test_bad_images_are_422_naming_the_index(http, photos, bad, message):
    good = data_url(jpeg(photos["coffee.png"], (32, 32)))
    res = http.post("/v1/embeddings", json={"model": "efficientnet-lite0", "input": [good, bad]})
    assert res.status_code == 422, res.text
    err = res.json()["error"]
    assert err["param"] == "input[1]"
    import re

    assert re.search(message, err["message"]), err["message"]


def test_oversize_upload_is_413_json(http):
    big = data_url(np.random.default_rng(0).bytes(MAX_BODY))
    res = http.post("/v1/embeddings", json={"model": "efficientnet-lite0", "input": [big]})
    assert res.status_code == 413 and res.json()["error"]["code"] == "payload_too_large"
    res = http.post("/v1/images/embeddings", content=b"\xff" * (MAX_BODY + 10))
    assert res.status_code == 413 and "error" in res.json()


def test_raw_upload_and_search_by_image(http, image_encoder, photos):
    body = jpeg(photos["astronaut.png"])
    res = http.post("/v1/images/embeddings", params={"model": "efficientnet-lite0"}, content=body,
                    headers={"Content-Type": "image/jpeg"})
    assert res.status_code == 200, res.text
    np.testing.assert_allclose(res.json()["data"][0]["embedding"], image_encoder.encode([body])[0], atol=1e-4)
    res = http.post("/v1/images/embeddings", content=b"plain text, not an image")
    assert res.status_code == 422 and res.json()["error"]["param"] == "body"

    res = http.post("/v1/collections/photos/search/image", params={"k": 2}, content=body)
    assert res.status_code == 200, res.text
    hits = res.json()["data"]
    assert hits[0]["id"] == "things/astronaut.png" and len(hits) == 2 and res.json()["mode"] == "image"
    cat = data_url(jpeg(photos["chelsea.png"], (200, 150)))
    res = http.post("/v1/collections/photos/search", json={"image": cat, "k": 3})
    assert res.status_code == 200 and res.json()["data"][0]["metadata"] == {"path": "cats/chelsea.png",
                                                                            "label": "cats"}
    res = http.post("/v1/collections/photos/search", json={"image": cat, "filter": {"label": "things"}})
    assert {h["metadata"]["label"] for h in res.json()["data"]} == {"things"}
    res = http.post("/v1/collections/photos/search", json={"image": cat, "query": "a cat"})
    assert res.status_code == 422 and res.json()["error"]["param"] == "image"
    res = http.post("/v1/collections/photos/search", json={"query": "a cat"})
    assert res.status_code == 422 and "embeds images only" in res.json()["error"]["message"]
    res = http.post("/v1/collections/photos/search/image", params={"filter": "{not json"}, content=body)
    assert res.status_code == 422 and res.json()["error"]["param"] == "filter"


def test_concurrent_image_requests_are_batched_correctly(http, image_encoder, photos):
    names = ["coffee.png", "rocket.jpg", "chelsea.png", "astronaut.png"]
    bodies = [jpeg(photos[n], (96, 96)) for n in names]
    expected = image_encoder.encode(bodies)

    def call(i: int) -> np.ndarray:
        res = http.post("/v1/embeddings", json={"model": "efficientnet-lite0",
                                                "input": [data_url(bodies[i % 4])]})
        assert res.status_code == 200, res.text
        return np.array(res.json()["data"][0]["embedding"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    for i, vec in enumerate(results):
        np.testing.assert_allclose(vec, expected[i % 4], atol=1e-4)


def test_a_text_model_refuses_image_inputs(client):
    """The session's text server: a data URL is not embedded as base64 text."""
    res = client.post("/v1/embeddings", json={"model": "default", "input": ["fine", data_url(b"\xff\xd8")]})
    assert res.status_code == 422 and res.json()["error"]["param"] == "input[1]"
    assert "embeds text" in res.json()["error"]["message"]
