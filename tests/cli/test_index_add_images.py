"""`embedops index add --images` and `Project.add_images` / `Project.upsert_images`: images added to an existing
image collection (same id replaces), found by image; wrong modality, bad files and bad entries refused with nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.errors import InputError
from embedops.index import Collection

runner = CliRunner()


def _put(photos: dict[str, Path], folder: Path, files: dict[str, str]) -> Path:
    """`folder` with small copies of photos: {relative path: photo name}."""
    for rel, name in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(photos[name]).convert("RGB").resize((96, 96)).save(folder / rel)
    return folder


@pytest.fixture()
def album(tmp_path, photos, image_encoder) -> Path:
    """An image collection of two labelled photos, built by the library."""
    shots = _put(photos, tmp_path / "shots", {"cats/chelsea.png": "chelsea.png", "things/coffee.png": "coffee.png"})
    path = tmp_path / "album"
    Project().index_images(shots, path, encoder=image_encoder).close()
    return path


def _ids_and_count(path: Path) -> tuple[set[str], int]:
    with Collection.open(path) as col:
        n = len(col)
        return {r.id for r in col.get(["cats/chelsea.png", "things/coffee.png", "things/rocket.jpg"]) if r}, n


def test_cli_adds_images_and_upserts_same_ids(tmp_path, photos, album):
    # cats/chelsea.png is already in the collection: here it is another picture (the astronaut), so it replaces it.
    more = _put(photos, tmp_path / "more", {"cats/chelsea.png": "astronaut.png", "things/rocket.jpg": "rocket.jpg"})
    res = runner.invoke(app, ["index", "add", str(album), "--images", str(more)])
    assert res.exit_code == 0, res.output
    assert "added 2 images (1 new, 1 replaced, 2 labels); the collection holds 3" in res.output
    ids, n = _ids_and_count(album)
    assert n == 3 and ids == {"cats/chelsea.png", "things/coffee.png", "things/rocket.jpg"}

    for query, expected in (("things/rocket.jpg", "things/rocket.jpg"), ("cats/chelsea.png", "cats/chelsea.png")):
        res = runner.invoke(app, ["index", "search", str(album), "--image", str(more / query), "-k", "3", "--json"])
        assert res.exit_code == 0, res.output
        hits = json.loads(res.output)
        assert hits[0]["id"] == expected and hits[0]["score"] > 0.99, hits
        assert hits[0]["metadata"]["label"] == expected.split("/")[0]

    # Adding the same folder again writes the same ids: nothing new.
    res = runner.invoke(app, ["index", "add", str(album), "--images", str(more), "--labels", "none"])
    assert res.exit_code == 0 and "(0 new, 2 replaced); the collection holds 3" in res.output, res.output


def test_cli_refuses_the_wrong_modality_and_bad_files(tmp_path, photos, album, encoder):
    more = _put(photos, tmp_path / "more", {"rocket.jpg": "rocket.jpg"})
    text_col = tmp_path / "texts"
    Collection.create(text_col, encoder).close()  # an empty text collection: its model is never loaded here
    res = runner.invoke(app, ["index", "add", str(text_col), "--images", str(more)])
    assert res.exit_code == 2 and "holds text vectors (all-MiniLM-L6-v2)" in res.output, res.output
    assert "images cannot be added" in res.output

    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "d1", "text": "a cat on a sofa"}) + "\n")
    res = runner.invoke(app, ["index", "add", str(album), "--data", str(docs)])
    assert res.exit_code == 2 and "holds image vectors (efficientnet-lite0)" in res.output, res.output
    for args in ([], ["--data", str(docs), "--images", str(more)]):
        res = runner.invoke(app, ["index", "add", str(album), *args])
        assert res.exit_code == 2 and "exactly one of --data" in res.output, res.output

    # A good new image and a broken one: refused as a whole, naming the file; the good one is not added either.
    (more / "zz-broken.png").write_text("not an image")
    res = runner.invoke(app, ["index", "add", str(album), "--images", str(more)])
    assert res.exit_code == 2 and "zz-broken.png" in res.output and "not an image" in res.output, res.output
    assert _ids_and_count(album)[1] == 2


def test_library_upsert_images_names_the_bad_entry(album, photos):
    with Project() as project:
        good = {"id": "rocket", "image": str(photos["rocket.jpg"]), "metadata": {"label": "things"}}
        with pytest.raises(InputError, match=r"images\[1\]"):
            project.upsert_images([good, {"id": "bad", "image": b"not an image"}], album)
        with pytest.raises(InputError, match=r"duplicate id 'rocket'") as info:
            project.upsert_images([good, good], album)
        assert info.value.where == "images[1].id"
        assert len(project.open_collection(album)) == 2  # nothing written by the refused calls
        assert project.upsert_images([good], album) == 1
        hit = project.search_image(photos["rocket.jpg"], k=1, path=album)[0]
        assert hit.id == "rocket" and hit.metadata == {"label": "things"}
