import json

from index.__main__ import main


def test_build_add_info_end_to_end(image_dir, tmp_path, capsys):
    data = tmp_path / "train.txt"
    data.write_text("IMGID:101\nHello\tO\n\nIMGID:102\nRome\tB-LOC\n\nIMGID:900\nbad\tO\n\nIMGID:555\nx\tO\n")
    out = tmp_path / "idx"
    assert main(["build", "--data", str(data), "--images", str(image_dir), "--out", str(out),
                 "--workers", "0", "--batch-size", "2", "--quiet", "--no-regions"]) == 0
    printed = capsys.readouterr().out
    assert "2 images embedded" in printed and "1 missing and 1 unreadable" in printed
    m = json.loads((out / "manifest.json").read_text())
    assert m["data_files"][0]["path"] == str(data) and len(m["data_files"][0]["sha256"]) == 64
    assert not (out / "regions.npy").exists()

    assert main(["add", str(out), "--images", str(image_dir), "--workers", "0", "--quiet"]) == 0
    assert "4 images embedded" in capsys.readouterr().out
    assert json.loads((out / "ids.json").read_text()) == ["101", "102", "103", "104"]

    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "embedder" in table and "efficientnet_lite0" in table and "factory" in table
