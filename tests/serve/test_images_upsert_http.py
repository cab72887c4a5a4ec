"""POST /v1/collections/{name}/images against a real `embedops serve` process: upsert images into a served image
collection, find them by image, the bad-input cases, and concurrent writers."""

from __future__ import annotations

import io
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from .conftest import Server
from .test_images_http import bomb_png, data_url

MAX_INPUTS = 6
# Distinct scikit-image photos (grey ones become RGB): two built in, the rest sent over HTTP.
BUILT = ("chelsea.png", "coffee.png")
SENT = ("rocket.jpg", "astronaut.png", "brick.png", "camera.png", "coins.png", "grass.png", "horse.png", "moon.png",
        "page.png", "retina.jpg", "hubble_deep_field.jpg", "motorcycle_left.png")


def small_png(path, side: int = 64) -> bytes:
    """A small PNG of a photo (fast to send and to embed)."""
    buf = io.BytesIO()
    Image.open(path).convert("RGB").resize((side, side)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def upsert_server(tmp_path_factory, image_encoder, photos):
    """efficientnet-lite0 and a collection `album` of two photos built by the library; at most MAX_INPUTS inputs."""
    from embedops import Project

    root = tmp_path_factory.mktemp("image-upsert")
    folder = root / "shots"
    folder.mkdir()
    for name in BUILT:
        shutil.copy(photos[name], folder / name)
    Project().index_images(folder, root / "collections" / "album", encoder=image_encoder).close()
    srv = Server(["--model", "efficientnet-lite0", "--collections-root", str(root / "collections"), "--no-auth",
                  "--max-inputs", str(MAX_INPUTS)], root)
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pngs(photos) -> dict[str, str]:
    """Data URLs of small PNGs of every photo used here, by file name."""
    return {name: data_url(small_png(photos[name]), "image/png") for name in (*BUILT, *SENT)}


@pytest.fixture()
def http(upsert_server):
    with httpx.Client(base_url=upsert_server.url, timeout=120) as c:
        yield c


def _count(http: httpx.Client) -> int:
    return http.get("/v1/collections/album").json()["documents"]


def _top(http: httpx.Client, url: str, k: int = 1) -> list[dict]:
    res = http.post("/v1/collections/album/search", json={"image": url, "k": k})
    assert res.status_code == 200, res.text
    return res.json()["data"]


def test_upsert_then_find_by_image_and_replace_by_id(http, pngs):
    before = _count(http)
    res = http.post("/v1/collections/album/images", json={"images": [
        {"id": "rocket", "image": pngs["rocket.jpg"], "metadata": {"label": "things"}},
        {"id": "astronaut", "image": pngs["astronaut.png"]}]})
    assert res.status_code == 200, res.text
    assert res.json() == {"collection": "album", "upserted": 2, "deleted": 0, "documents": before + 2}
    hit = _top(http, pngs["rocket.jpg"])[0]
    assert hit["id"] == "rocket" and hit["metadata"] == {"label": "things"} and hit["score"] > 0.99
    assert _top(http, pngs["astronaut.png"])[0]["id"] == "astronaut"

    # The same id again replaces the image and its metadata: no second "rocket".
    res = http.post("/v1/collections/album/images", json={"images": [
        {"id": "rocket", "image": pngs["brick.png"], "metadata": {"label": "walls"}}], "refresh": True})
    assert res.status_code == 200 and res.json()["upserted"] == 1 and res.json()["documents"] == before + 2
    hit = _top(http, pngs["brick.png"])[0]
    assert hit["id"] == "rocket" and hit["metadata"] == {"label": "walls"} and hit["score"] > 0.99
    assert _top(http, pngs["rocket.jpg"])[0]["score"] < 0.9  # the old rocket vector is gone
    # An upsert is counted like any model call.
    metrics = http.get("/metrics").text
    assert 'embedops_model_requests_total{endpoint="images",model="efficientnet-lite0"}' in metrics


@pytest.mark.parametrize(("bad", "message"), [
    ("data:image/png;base64,@@not base64@@", "base64 is invalid"),
    (data_url(b"just some text, not an image", "image/png"), "not an image Pillow can read"),
    (data_url(bomb_png(20_000), "image/png"), "too large|over the limit"),
    ("/etc/passwd", "not a data URL"),  # a server path is never read
])
def test_a_bad_image_is_422_naming_it_and_nothing_is_written(http, pngs, bad, message):
    before = _count(http)
    res = http.post("/v1/collections/album/images", json={"images": [
        {"id": "fine-one", "image": pngs["coins.png"]}, {"id": "bad-one", "image": bad}]})
    assert res.status_code == 422, res.text
    err = res.json()["error"]
    assert err["param"] == "images[1]" and re.search(message, err["message"]), err
    assert _count(http) == before  # images[0] was fine, but the request is all or nothing


def test_request_errors(http, pngs):
    one = {"id": "x", "image": pngs["coins.png"]}
    res = http.post("/v1/collections/nowhere/images", json={"images": [one]})
    assert res.status_code == 404 and res.json()["error"]["code"] == "collection_not_found"
    many = [{"id": f"m{i}", "image": pngs["coins.png"]} for i in range(MAX_INPUTS + 1)]
    before = _count(http)
    res = http.post("/v1/collections/album/images", json={"images": many})
    assert res.status_code == 413 and res.json()["error"]["param"] == "images", res.text
    assert f"the bound is {MAX_INPUTS}" in res.json()["error"]["message"]
    res = http.post("/v1/collections/album/images", json={"images": [one, {"id": "y"}]})
    assert res.status_code == 422 and res.json()["error"]["param"] == "images[1].image", res.text
    res = http.post("/v1/collections/album/images", json={"images": [one, {**one, "metadata": {"v": 2}}]})
    assert res.status_code == 422 and res.json()["error"]["param"] == "images[1].id", res.text
    assert "duplicate id 'x'" in res.json()["error"]["message"]
    res = http.post("/v1/collections/album/images", json={"images": [{**one, "lable": "typo"}]})
    assert res.status_code == 422 and res.json()["error"]["param"] == "images[0].lable", res.text
    res = http.post("/v1/collections/album/images", json={"images": []})
    assert res.status_code == 422 and res.json()["error"]["param"] == "images", res.text
    assert _count(http) == before


def test_a_text_collection_refuses_images(client, pngs):
    """The session's text server and its `sts` collection: a 422 that names what the collection holds."""
    before = client.get("/v1/collections/sts").json()["documents"]
    res = client.post("/v1/collections/sts/images", json={"images": [{"id": "cat", "image": pngs["chelsea.png"]}]})
    assert res.status_code == 422, res.text
    err = res.json()["error"]
    assert err["param"] == "images" and "holds text vectors" in err["message"]
    assert "/v1/collections/sts/documents" in err["message"]
    assert client.get("/v1/collections/sts").json()["documents"] == before


def test_concurrent_upserts_of_disjoint_images_are_all_found(http, pngs):
    names = SENT[4:12]  # 8 photos none of the other tests add, 2 per writer
    before = _count(http)

    def write(w: int) -> int:
        mine = names[2 * w : 2 * w + 2]
        res = http.post("/v1/collections/album/images", json={"images": [
            {"id": f"w{w}-{n}", "image": pngs[n], "metadata": {"writer": w}} for n in mine]})
        assert res.status_code == 200, res.text
        return res.json()["upserted"]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(write, range(4))) == [2, 2, 2, 2]
    assert _count(http) == before + 8
    with ThreadPoolExecutor(8) as pool:  # searched at once too: the model worker batches them
        tops = list(pool.map(lambda name: _top(http, pngs[name])[0], names))
    for i, (name, hit) in enumerate(zip(names, tops, strict=True)):
        assert hit["id"] == f"w{i // 2}-{name}" and hit["metadata"] == {"writer": i // 2}, (name, hit)
