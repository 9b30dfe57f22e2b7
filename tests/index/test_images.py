import json

import pytest

from index.images import ImageDataset, collate, image_id, images_from_corpora, images_in_dir, open_image


def test_image_id_is_stem():
    assert image_id("images/1015799.jpg") == "1015799"


def test_images_in_dir_sorted(image_dir):
    ids = [i for i, _ in images_in_dir(image_dir)]
    assert ids == ["101", "102", "103", "104", "900", "901", "902"]
    with pytest.raises(FileNotFoundError):
        images_in_dir(image_dir / "nope")


def test_open_image_problems(image_dir):
    assert open_image(image_dir / "101.jpg").mode == "RGB"
    for name, why in [("900.jpg", "unreadable"), ("901.jpg", "empty"), ("902.jpg", "not an image"),
                      ("404.jpg", "missing")]:
        with pytest.raises(ValueError, match=why):
            open_image(image_dir / name)


def test_dataset_collate_keeps_problems(image_dir):
    import torchvision.transforms as T

    paths = [str(image_dir / "101.jpg"), str(image_dir / "901.jpg"), None]
    ds = ImageDataset(paths, T.Compose([T.Resize((8, 8)), T.ToTensor()]))
    rows, pixels, bad = collate([ds[i] for i in range(3)])
    assert rows.tolist() == [0] and pixels.shape == (1, 3, 8, 8)
    assert bad == [(1, "empty file"), (2, "missing file")]


def test_images_from_corpora(image_dir, tmp_path):
    conll = tmp_path / "train.txt"
    conll.write_text("IMGID:101\nHello\tO\n\nIMGID:555\nRome\tB-LOC\n\nIMGID:101\nagain\tO\n")
    jsonl = tmp_path / "dev.jsonl"
    jsonl.write_text(json.dumps({"id": "104", "tokens": ["hi"]}) + "\n")
    got = images_from_corpora([conll, jsonl], image_dir)
    assert got == [("101", str(image_dir / "101.jpg")), ("555", None), ("104", str(image_dir / "104.png"))]
