"""prepare: every kind of bad file, made here, is skipped with its reason or converted."""

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.data import cache
from facegan.data.prepare import prepare
from facegan.errors import FaceganError

SIZE = 32


def photo(seed: int, size=(80, 100), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize(size, Image.BILINEAR).convert(mode)


def png_bomb(path: Path, side: int = 100_000) -> None:
    """A tiny PNG whose header claims side x side pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def mixed(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    photo(1).save(root / "good.jpg", quality=95)
    photo(2).save(root / "sub" / "deeper" / "nested.png")
    photo(3, mode="L").save(root / "gray.jpg")
    photo(4, mode="CMYK").save(root / "cmyk.jpg")
    rgba = photo(5).convert("RGBA")
    alpha = np.full((100, 80), 255, np.uint8)
    alpha[:, :40] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "rgba.png")
    Image.fromarray(np.full((100, 80), 32896, np.uint16)).save(root / "deep16.png")  # 16-bit mid-grey
    photo(6, size=(20, 20)).save(root / "small.png")
    good = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a picture")
    png_bomb(root / "bomb.png")
    os.symlink("loop-b.jpg", root / "loop-a.jpg")
    os.symlink("loop-a.jpg", root / "loop-b.jpg")
    os.symlink("..", root / "sub" / "up")  # a folder loop: must not be followed forever
    os.symlink("missing.jpg", root / "dangling.jpg")
    os.mkfifo(root / "fifo.jpg")  # reading it would block forever
    (root / "notes.txt").write_text("not an image extension")
    return root


def photo_folder(root: Path, count: int) -> Path:
    """A folder of ``count`` small JPEG photos, 0.jpg, 1.jpg, ..."""
    root.mkdir()
    for i in range(count):
        photo(i).save(root / f"{i}.jpg")
    return root


def reasons(manifest) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in manifest["skipped"]}


def test_a_folder_of_good_odd_and_bad_files(mixed, tmp_path):
    calls = []
    manifest, reused = prepare(mixed, tmp_path / "cache", SIZE, progress=lambda d, t: calls.append((d, t)), workers=1)
    assert not reused
    assert manifest["files"] == ["cmyk.jpg", "deep16.png", "good.jpg", "gray.jpg", "rgba.png", "sub/deeper/nested.png"]
    why = reasons(manifest)
    assert why["small.png"].startswith("smaller than the target: 20x20")
    assert why["truncated.jpg"].startswith("truncated or corrupt")
    assert why["empty.jpg"] == "empty file"
    assert why["text.jpg"].startswith("not an image")
    assert why["bomb.png"].startswith("decompression bomb")
    assert why["loop-a.jpg"] == why["loop-b.jpg"] == "symlink loop"
    assert why["dangling.jpg"].startswith("cannot read")
    assert why["fifo.jpg"] == "not a regular file"
    assert manifest["skipped_count"] == 9 and manifest["count"] == 6 and manifest["ignored_non_image_files"] == 1
    assert manifest["conversions"] == {"CMYK to RGB": 1, "16-bit scaled to 8-bit": 1, "grayscale to RGB": 1,
                                       "transparency composited on white": 1}
    assert calls[-1] == (calls[-1][1], calls[-1][1])

    opened = cache.open_cache(tmp_path / "cache")
    images = np.asarray(opened.images)
    assert images.shape == (6, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert np.all(images[4][:, :12] == 255)  # transparent half composited on white
    assert np.all(np.abs(images[1].astype(int) - 128) <= 1)  # 16-bit 32896 -> 128
    gray = images[3]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert opened.labels == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_skipped(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo(1).save(root / "good.jpg")
    photo(2).save(root / "locked.jpg")
    os.chmod(root / "locked.jpg", 0)
    manifest, _ = prepare(root, tmp_path / "cache", SIZE, workers=1)
    assert reasons(manifest)["locked.jpg"].startswith("cannot read")


def test_parallel_decoding_gives_the_same_cache(mixed, tmp_path):
    for i in range(70):  # enough files for the process pool
        photo(100 + i).save(mixed / f"extra-{i:03d}.jpg")
    one, _ = prepare(mixed, tmp_path / "one", SIZE, workers=1)
    two, _ = prepare(mixed, tmp_path / "two", SIZE, workers=2)
    assert one["files"] == two["files"] and reasons(one) == reasons(two)
    assert np.array_equal(np.load(tmp_path / "one" / "images.npy"), np.load(tmp_path / "two" / "images.npy"))


def test_upscaling_is_allowed_on_request(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo(6, size=(20, 20)).save(root / "small.png")
    with pytest.raises(FaceganError, match="no usable image.*1 smaller than the target"):
        prepare(root, tmp_path / "cache", SIZE)
    assert not cache.is_cache(tmp_path / "cache")
    manifest, _ = prepare(root, tmp_path / "cache", SIZE, allow_upscale=True)
    assert manifest["count"] == 1


def test_crops(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    picture = np.zeros((100, 80, 3), np.uint8)
    picture[:10] = 255  # a white band at the top, outside the centre square
    Image.fromarray(picture).save(root / "band.png")
    centre, _ = prepare(root, tmp_path / "centre", SIZE, crop="center")
    squash, _ = prepare(root, tmp_path / "squash", SIZE, crop="none")
    box, _ = prepare(root, tmp_path / "box", SIZE, crop="0,0,40,40")
    assert np.load(tmp_path / "centre" / "images.npy")[0, 0].max() == 0
    assert np.load(tmp_path / "squash" / "images.npy")[0, 0].min() == 255
    assert np.load(tmp_path / "box" / "images.npy")[0, 0].min() == 255
    with pytest.raises(FaceganError, match="crop box 50,50,40,40 lies outside the 80x100 image"):
        prepare(root, tmp_path / "outside", SIZE, crop="50,50,40,40")
    with pytest.raises(FaceganError, match="crop must be center, none or x,y,w,h"):
        prepare(root, tmp_path / "bad", SIZE, crop="middle")


def test_a_zip_with_a_path_traversal_member(tmp_path):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, seed in (("a/one.jpg", 1), ("two.png", 2), ("../evil.jpg", 3), ("/etc/abs.jpg", 4)):
            data = io.BytesIO()
            photo(seed).save(data, format="PNG" if name.endswith("png") else "JPEG")
            z.writestr(name, data.getvalue())
        z.writestr("readme.txt", "hello")
        z.writestr("broken.jpg", b"\xff\xd8\xff\xe0 not really")
    manifest, _ = prepare(archive, tmp_path / "cache", SIZE, workers=1)
    assert manifest["source_kind"] == "zip" and manifest["files"] == ["a/one.jpg", "two.png"]
    why = reasons(manifest)
    assert why["../evil.jpg"].startswith("unsafe path") and why["/etc/abs.jpg"].startswith("unsafe path")
    assert why["broken.jpg"].startswith(("truncated or corrupt", "not an image"))
    assert not (tmp_path / "evil.jpg").exists()  # nothing is ever extracted


def test_a_zip_member_declared_too_large_is_skipped_unread(tmp_path):
    """A 300 MiB member of zeros packs into 300 kB: it is skipped from its declared size,
    never inflated into memory."""
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("huge.png", "w") as member:
            zeros = bytes(2**20)
            for _ in range(300):
                member.write(zeros)
        data = io.BytesIO()
        photo(1).save(data, format="PNG")
        z.writestr("fine.png", data.getvalue())
    assert archive.stat().st_size < 2**20
    manifest, _ = prepare(archive, tmp_path / "cache", SIZE, workers=1)
    assert manifest["files"] == ["fine.png"]
    assert reasons(manifest)["huge.png"] == "too large (300 MiB declared, at most 256 MiB)"


def test_an_empty_folder_and_a_missing_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaceganError, match="no images found"):
        prepare(tmp_path / "empty", tmp_path / "cache", SIZE)
    with pytest.raises(FaceganError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "cache", SIZE)


def test_same_source_and_settings_reuse_the_cache_and_changes_redo_it(tmp_path):
    root = photo_folder(tmp_path / "photos", 3)
    first, reused = prepare(root, tmp_path / "cache", SIZE)
    assert not reused
    again, reused = prepare(root, tmp_path / "cache", SIZE)
    assert reused and again == first
    _, reused = prepare(root, tmp_path / "cache", 16)  # other settings
    assert not reused
    photo(9).save(root / "3.jpg")  # another file
    manifest, reused = prepare(root, tmp_path / "cache", 16)
    assert not reused and manifest["count"] == 4


def test_an_interrupted_prepare_never_looks_complete(tmp_path):
    root = photo_folder(tmp_path / "photos", 5)
    prepare(root, tmp_path / "cache", SIZE)
    assert cache.is_cache(tmp_path / "cache")

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(root, tmp_path / "cache", 16, progress=interrupt)  # re-prepare at another size, cut short
    assert cache.read_manifest(tmp_path / "cache") is None
    with pytest.raises(FaceganError, match="not a complete prepared cache"):
        cache.open_cache(tmp_path / "cache")
    manifest, reused = prepare(root, tmp_path / "cache", 16)
    assert not reused and manifest["count"] == 5


def test_a_damaged_cache_is_prepared_again_not_reported_up_to_date(tmp_path):
    root = photo_folder(tmp_path / "photos", 3)
    first, _ = prepare(root, tmp_path / "cache", SIZE)
    images = tmp_path / "cache" / "images.npy"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])  # truncated behind its manifest's back
    with pytest.raises(FaceganError, match="is damaged"):
        cache.open_cache(tmp_path / "cache")
    manifest, reused = prepare(root, tmp_path / "cache", SIZE)
    assert not reused and "is damaged" in manifest["repaired"]
    assert np.array_equal(cache.open_cache(tmp_path / "cache").images, np.load(images))
    assert manifest["count"] == first["count"] == 3


def make_celeba(root: Path, count: int = 6) -> list[str]:
    """A CelebA-layout folder whose image i is a flat colour with red = 40 * i."""
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{n:06d}.jpg" for n in range(3, 3 + 2 * count, 2)]  # not contiguous, like the subset
    attributes = ["Male", "Smiling", "Eyeglasses"]
    rows = []
    for i, name in enumerate(names):
        Image.new("RGB", (178, 218), (40 * i, 100, 50)).save(root / "img_align_celeba" / name, quality=98)
        rows.append(f"{name} {'1' if i % 2 else '-1'} {'1' if i % 3 == 0 else '-1'} -1")
    rows[4] = f"{names[4]} 1 1"  # one value short
    del rows[5]  # the last image has no row at all
    (root / "list_attr_celeba.txt").write_text(f"{count}\n{' '.join(attributes)}\n" + "\n".join(rows) + "\n")
    (root / "identity_CelebA.txt").write_text("".join(f"{n} {100 + i}\n" for i, n in enumerate(names)))
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {0 if i < 2 else 1 if i < 3 else 2}\n" for i, n in enumerate(names)))
    return names


def test_celeba_layout_labels_stay_aligned_and_bad_rows_are_skipped(tmp_path):
    names = make_celeba(tmp_path / "celeba")
    manifest, _ = prepare(tmp_path / "celeba", tmp_path / "cache", SIZE, workers=1)
    assert manifest["source_kind"] == "celeba"
    assert manifest["attribute_names"] == ["Male", "Smiling", "Eyeglasses"]
    why = reasons(manifest)
    assert why[f"{names[4]}"].startswith("malformed attribute row")
    assert why[f"{names[5]}"] == "no row in list_attr_celeba.txt"
    opened = cache.open_cache(tmp_path / "cache")
    kept = [names.index(f) for f in manifest["files"]]
    assert kept == [0, 1, 2, 3]
    red = np.asarray(opened.images)[:, 16, 16, 0].astype(int)
    assert np.all(np.abs(red - 40 * np.array(kept)) <= 3)  # each image is the one its labels belong to
    assert opened.labels["attributes"].tolist() == [[i % 2, int(i % 3 == 0), 0] for i in kept]
    assert opened.labels["identity"].tolist() == [100 + i for i in kept]
    assert opened.labels["split"].tolist() == [0, 0, 1, 2]

    train, _ = prepare(tmp_path / "celeba", tmp_path / "train", SIZE, split="train")
    assert train["files"] == names[:2]
    assert cache.open_cache(tmp_path / "train").labels["split"].tolist() == [0, 0]


def test_split_needs_celeba(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo(1).save(root / "a.jpg")
    with pytest.raises(FaceganError, match="--split train needs a CelebA root"):
        prepare(root, tmp_path / "cache", SIZE, split="train")


def test_manifest_is_json_with_source_counts_and_settings(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo(1).save(root / "a.jpg")
    prepare(root, tmp_path / "cache", SIZE)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["settings"] == {"size": SIZE, "crop": "center", "split": "all", "allow_upscale": False}
    assert manifest["source"] == str(root.resolve()) and manifest["count"] == 1 and manifest["complete"]
