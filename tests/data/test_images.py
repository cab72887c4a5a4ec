"""Reading images safely: bad files are clear errors, every colour mode becomes RGB, folders and labels, prepare."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedops.data.image_folders import read_image_folder
from embedops.data.image_prepare import HashIndex, ImagePrepareOptions, prepare_images, report_path
from embedops.data.images import Preprocess, decode_data_url, load_rgb, open_image, to_rgb
from embedops.errors import InputError


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height, with (almost) no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)


# -- bad input ---------------------------------------------------------------------------------------------------
def test_truncated_jpeg_is_a_clear_error(tmp_path: Path):
    data = encoded(photo(), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as err:
        load_rgb(path)
    assert err.value.where == str(path)


def test_text_file_named_png_says_what_it_is(tmp_path: Path):
    path = tmp_path / "notes.png"
    path.write_text("shopping list: eggs, milk\n")
    with pytest.raises(InputError, match="not an image.*looks like text: 'shopping list") as err:
        load_rgb(path)
    assert err.value.where == str(path)


def test_a_20000_square_image_is_refused_from_its_header(tmp_path: Path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    assert path.stat().st_size < 200  # 1.2 GB of pixels announced by a 100-byte file
    started = time.perf_counter()
    with pytest.raises(InputError, match="too large|over the limit") as err:
        load_rgb(path)
    assert time.perf_counter() - started < 1.0  # nothing was decoded
    assert err.value.where == str(path)
    # Under Pillow's own guard but over ours: our limit, with the size, before decoding.
    path.write_bytes(png_header_only(9_000, 9_000))
    with pytest.raises(InputError, match=r"9000 x 9000 = 81,000,000 pixels, over the limit of 64,000,000"):
        open_image(path)
    with pytest.raises(InputError, match="over the limit of 1,000"):
        load_rgb(encoded(photo(), "PNG"), max_pixels=1_000)


def test_one_pixel_image_is_prepared():
    one = encoded(Image.new("RGB", (1, 1), (200, 10, 30)), "PNG")
    arr = Preprocess(size=32, resize=36).load(one)
    assert arr.shape == (3, 32, 32) and np.isfinite(arr).all()
    expected = (np.array([200, 10, 30]) / 255 - np.array(Preprocess().mean)) / np.array(Preprocess().std)
    np.testing.assert_allclose(arr[:, 16, 16], expected, atol=1e-5)


def test_data_urls(tmp_path: Path):
    png = encoded(photo(), "PNG")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert decode_data_url(url) == png
    assert load_rgb(url).size == (64, 48)
    with pytest.raises(InputError, match="base64 is invalid") as err:
        decode_data_url("data:image/png;base64,@@@not-base64@@@", where="input[2]")
    assert err.value.where == "input[2]"
    with pytest.raises(InputError, match="holds text/plain, not an image"):
        decode_data_url("data:text/plain;base64," + base64.b64encode(b"hi").decode())
    with pytest.raises(InputError, match="not an image Pillow can read"):
        load_rgb("data:image/png;base64," + base64.b64encode(b"hello, not a png").decode())
    with pytest.raises(InputError, match="plain string is not an image"):
        load_rgb(str(tmp_path / "x.png"))


# -- colour modes --------------------------------------------------------------------------------------------------
def test_cmyk_sixteen_bit_alpha_palette_are_converted(tmp_path: Path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    rgb = load_rgb(encoded(cmyk, "JPEG", quality=95))
    assert rgb.mode == "RGB" and np.asarray(rgb)[8, 8].tolist()[0] > 200 and np.asarray(rgb)[8, 8, 1] < 60

    deep = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))  # 16-bit grey
    path = tmp_path / "deep.png"
    deep.save(path)
    assert Image.open(path).mode.startswith("I")
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == [0, 128, 255]  # scaled, not clipped to white

    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent (black under it): shown as white
    out = np.asarray(load_rgb(encoded(rgba, "PNG")))
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [255, 0, 0]

    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.putpixel((0, 0), 0)
    out = np.asarray(load_rgb(encoded(pal, "PNG")))
    assert out[0, 0].tolist() == [255, 255, 255] and out[2, 2].tolist() == [0, 128, 0]

    for mode in ("L", "LA", "1", "I", "F"):
        img = to_rgb(Image.new(mode, (3, 3)))
        assert img.mode == "RGB" and img.size == (3, 3)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    out = load_rgb(encoded(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    top = np.asarray(out)[5, 10]
    assert top[0] > 200 and top[2] < 60  # the red half is on top once upright


def test_preprocess_crops_the_centre_of_the_shorter_side():
    img = Image.new("RGB", (300, 100), (0, 0, 0))
    img.paste((255, 255, 255), (100, 0, 200, 100))  # a white centre square
    arr = Preprocess(size=32, resize=32, mean=(0, 0, 0), std=(1, 1, 1)).load(encoded(img, "PNG"))
    # Only the centre (white) square is kept; bicubic support blends a little black into the outermost columns,
    # as resizing the whole image and then cropping does.
    assert arr[:, :, 2:-2].min() > 0.99 and arr.min() > 0.9
    wide = Image.new("RGB", (1, 5000), (10, 20, 30))  # an extreme strip is cropped, not blown up
    assert Preprocess().load(encoded(wide, "PNG")).shape == (3, 224, 224)


# -- folders ---------------------------------------------------------------------------------------------------------
def test_folder_labels_from_subfolders_and_csv(tmp_path: Path, shared_data: Path):
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        photo(hash(label) % 100).save(tmp_path / "pets" / label / "a.png")
    (tmp_path / "pets" / ".hidden").mkdir()
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    items = read_image_folder(tmp_path / "pets")
    assert [(i.id, i.label) for i in items] == [("cat/a.png", "cat"), ("dog/a.png", "dog")]
    assert [i.label for i in read_image_folder(tmp_path / "pets", labels="none")] == [None, None]

    digits = read_image_folder(shared_data / "digits")  # labels.csv: file,label
    assert len(digits) == 1797 and digits[0].id == "images/0000.png" and digits[0].label == "0"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nmissing.png,3\n")
    with pytest.raises(InputError, match="not found") as err:
        read_image_folder(tmp_path, labels_csv=bad)
    assert err.value.where == f"{bad}:2"
    with pytest.raises(InputError, match="not in a class subfolder"):
        photo().save(tmp_path / "pets" / "loose.png")
        read_image_folder(tmp_path / "pets", labels="folders")


# -- prepare --images -------------------------------------------------------------------------------------------------
def test_prepare_images_converts_shrinks_and_dedupes(tmp_path: Path):
    src = tmp_path / "raw"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    big = photo(1, (640, 480))
    big.save(src / "a" / "original.png")
    big.resize((320, 240)).save(src / "b" / "small-copy.jpg", quality=70)  # near duplicate, fewer pixels
    big.save(src / "b" / "same.png")  # exact duplicate
    photo(2, (200, 200)).convert("RGBA").save(src / "a" / "other.png")
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).resize((50, 50)).save(src / "b" / "deep.png")
    (src / "b" / "broken.jpg").write_bytes(encoded(photo(3), "JPEG")[:300])

    with pytest.raises(InputError, match="truncated or corrupt"):
        prepare_images(src, tmp_path / "out", ImagePrepareOptions(max_side=256))
    assert not (tmp_path / "out").exists()  # nothing half-written

    opts = ImagePrepareOptions(max_side=256, drop_unreadable=True)
    report = prepare_images(src, tmp_path / "out", opts)
    out = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg"))
    assert out == ["a/original.jpg", "a/other.jpg", "b/deep.jpg"]
    assert report.dropped_exact_duplicates == {"b/same.png": "a/original.png"}
    assert report.dropped_near_duplicates == {"b/small-copy.jpg": "a/original.png"}
    assert set(report.unreadable) == {"b/broken.jpg"} and report.converted == {"a/other.png": "RGBA",
                                                                                "b/deep.png": "I;16"}
    assert max(Image.open(tmp_path / "out" / "a" / "original.jpg").size) == 256
    saved = json.loads(report_path(tmp_path / "out").read_text())
    assert saved["written"] == 3 and saved["labels"] == {"a": 2, "b": 1}


def test_hash_index_finds_exactly_the_near_hashes():
    rng = np.random.default_rng(0)
    kept = [int(v) for v in rng.integers(0, 2**63, 300)]
    index = HashIndex(distance=6)
    for i, v in enumerate(kept):
        index.add(v, str(i))
    for i, v in enumerate(kept[:50]):
        bits = rng.choice(64, size=6, replace=False)
        flipped = v
        for b in bits:
            flipped ^= 1 << int(b)
        assert index.find(flipped) == str(i)
        seven = flipped ^ (1 << int(next(b for b in range(64) if b not in bits)))
        brute = [j for j, w in enumerate(kept) if (w ^ seven).bit_count() <= 6]
        assert (index.find(seven) is None) == (not brute)
