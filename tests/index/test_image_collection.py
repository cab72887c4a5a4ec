"""Image collections: built from a labelled folder, searched by image (and by text with CLIP), reopened from the
recorded spec; the CLI's `index build --images`, `index search --image` and `prepare --images`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from embedops import Project
from embedops.cli.main import app
from embedops.errors import InputError
from embedops.index import Collection
from embedops.models import encoder_from_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos) -> Path:
    """Four photos in two class subfolders."""
    root = tmp_path_factory.mktemp("photos") / "shots"
    (root / "cats").mkdir(parents=True)
    (root / "things").mkdir()
    shutil.copy(photos["chelsea.png"], root / "cats" / "chelsea.png")
    for name in ("coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(photos[name], root / "things" / name)
    return root


def test_build_search_by_image_filter_and_reopen(tmp_path, folder, image_encoder, encoder):
    project = Project()
    path = tmp_path / "col"
    col = project.index_images(folder, path, encoder=image_encoder)
    assert len(col) == 4 and col.model["name"] == "efficientnet-lite0"
    cat = Image.open(folder / "cats" / "chelsea.png").convert("RGB")
    w, h = cat.size
    view = ImageOps.mirror(cat.crop((w // 10, h // 10, w - w // 8, h - h // 8)))  # a cropped, mirrored view
    hits = project.search_image(view, k=4, path=path)
    assert hits[0].id == "cats/chelsea.png" and hits[0].metadata == {"path": "cats/chelsea.png", "label": "cats"}
    assert hits[0].score > hits[1].score + 0.1
    assert [h.id for h in project.search_image(folder / "cats" / "chelsea.png", k=5, filter={"label": "things"},
                                               path=path)] != [] and all(
        h.metadata["label"] == "things" for h in project.search_image(view, k=5, filter={"label": "things"},
                                                                       path=path))
    assert [h.id for h in project.search("rocket", mode="keyword", path=path)] == ["things/rocket.jpg"]
    with pytest.raises(InputError, match="embeds images only"):
        project.search("a cat", path=path)
    project.close()

    reopened = Collection.open(path, loader=encoder_from_spec)  # the recorded spec loads the same model
    try:
        assert reopened.encoder.fingerprint == image_encoder.fingerprint
        assert reopened.encoder_spec["modality"] == "image"
    finally:
        reopened.close()
    with pytest.raises(InputError, match="text model; image collections need an image model"):
        Project().index_images(folder, tmp_path / "text-col", encoder=encoder)
    assert not (tmp_path / "text-col").exists()


def test_clip_collection_is_searched_by_text(tmp_path, folder, tiny_clip_dir):
    """A RANDOM tiny CLIP: checks that a text query goes through the text tower into the images' space (wiring)."""
    project = Project()
    project.config.images.model = str(tiny_clip_dir)
    path = tmp_path / "clip-col"
    project.index_images(folder, path)
    hits = project.search("a photo of a cat", k=4, path=path)
    assert len(hits) == 4
    enc = project.load_image_encoder()
    query = enc.encode(["a photo of a cat"])[0]
    stored = {r.id: r.vector for r in project.open_collection(path).get([h.id for h in hits], with_vectors=True)}
    for h in hits:  # the scores are text-vector . image-vector
        assert abs(float(query @ stored[h.id]) - h.score) < 1e-4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    image_hit = project.search_image(folder / "things" / "coffee.png", k=1, path=path)[0]
    assert image_hit.id == "things/coffee.png" and image_hit.score > 0.999
    project.close()


def test_cli_build_search_and_prepare_images(tmp_path, folder):
    out = tmp_path / "prepared"
    res = runner.invoke(app, ["prepare", str(folder), str(out), "--images", "--max-side", "200"])
    assert res.exit_code == 0, res.output
    assert "written" in res.output and (out / "cats" / "chelsea.jpg").is_file()
    report = json.loads((tmp_path / "prepared.report.json").read_text())
    assert report["written"] == 4 and report["resized"] == 4 and report["labels"] == {"cats": 1, "things": 3}

    col = tmp_path / "cli-col"
    res = runner.invoke(app, ["index", "build", str(col), "--images", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 images, 2 labels" in res.output and "efficientnet-lite0" in res.output
    res = runner.invoke(app, ["index", "search", str(col), "--image", str(folder / "things" / "rocket.jpg"),
                              "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["id"] == "things/rocket.jpg"
    res = runner.invoke(app, ["index", "build", str(tmp_path / "x"), "--images", str(out), "--data",
                              str(tmp_path / "prepared.report.json")])
    assert res.exit_code == 2 and "exactly one of --data" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fake.png").write_text("not an image")
    res = runner.invoke(app, ["index", "build", str(tmp_path / "y"), "--images", str(bad)])
    assert res.exit_code == 2 and "not an image" in res.output and not (tmp_path / "y").exists()
    vec = np.asarray(Project().encode_images([folder / "cats" / "chelsea.png"]))
    assert vec.shape == (1, 1280)


def test_project_index_reads_an_image_data_source(tmp_path, folder):
    from embedops.config import ProjectConfig
    from embedops.config.schema import DataSource

    config = ProjectConfig(data=[DataSource(name="shots", path=str(folder), format="images")])
    config.index.path = str(tmp_path / "from-config")
    with Project(config) as project:
        col = project.index()
        assert len(col) == 4 and col.encoder_spec["location"] == "efficientnet-lite0"
        assert project.search_image(folder / "things" / "coffee.png", k=1)[0].id == "things/coffee.png"
