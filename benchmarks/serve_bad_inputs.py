"""Every bad input the tagging service refuses: what the client received, and that the next
request was answered.

    python benchmarks/serve_bad_inputs.py --run runs/demo/rgcn/seed13

Starts ``python -m rgcn serve`` (a real uvicorn process on a free loopback port, ``--images``
a temporary folder holding one photo and a symlink that leads out of it), sends each bad
request of :data:`CASES` followed by a good post, and writes
``benchmarks/results/serve_bad_inputs.json`` and ``.md`` (the table) through
``benchmarks/provenance.py``. The same cases are checked by ``tests/rgcn/serve/test_bad_inputs.py``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402

GOOD = {"text": "Look at Zelby today in Paris"}


def photo_bytes(size=(64, 48), colour=(200, 40, 40), fmt="JPEG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    """A real JPEG (noise, so its data is long) cut off at half its length."""
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(out, "JPEG")
    data = out.getvalue()
    return data[: len(data) // 2]


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG of a few KB whose header declares ``width`` x ``height`` pixels (one-bit grey;
    the image data holds only its first rows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * 64, 9))
            + chunk(b"IEND", b""))


def prepare_images(folder: Path) -> Path:
    """``folder/images`` with ``photo.jpg`` and ``link.jpg``, a symlink to a photo outside it."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "photo.jpg").write_bytes(photo_bytes())
    (folder / "outside.jpg").write_bytes(photo_bytes(colour=(30, 30, 200)))
    link = images / "link.jpg"
    if not link.is_symlink():
        link.symlink_to(folder / "outside.jpg")
    return images


@dataclass
class Case:
    """A bad request: ``request(limit_mb)`` gives ``(method, url, httpx keyword arguments)``;
    the answer must have ``status`` and a message holding ``says``."""

    name: str
    what: str
    request: Callable[[float], tuple[str, str, dict]]
    status: int
    says: str


def _form(text: str, name: str, data: bytes, ctype: str) -> dict:
    return {"data": {"text": text}, "files": {"image": (name, data, ctype)}}


CASES = [
    Case("empty post", 'JSON {"text": ""}', lambda mb: ("POST", "/tag", {"json": {"text": ""}}),
         422, "the post is empty"),
    Case("100,000-character post", "JSON, text of 100,000 characters",
         lambda mb: ("POST", "/tag", {"json": {"text": "word " * 20_000}}), 413, "100,000 characters"),
    Case("malformed JSON", 'body {"text": "Look at Zelby (unterminated)',
         lambda mb: ("POST", "/tag", {"content": b'{"text": "Look at Zelby', "headers": {
             "content-type": "application/json"}}), 400, "not valid JSON"),
    Case("missing field", 'JSON {"image": "photo.jpg"} (no text)',
         lambda mb: ("POST", "/tag", {"json": {"image": "photo.jpg"}}), 422, "text: the field is missing"),
    Case("upload that is not an image", "multipart, image = a text file",
         lambda mb: ("POST", "/tag", _form(GOOD["text"], "notes.txt", b"these are notes, not a photo\n" * 20,
                                           "text/plain")), 415, "not an image"),
    Case("truncated JPEG", "multipart, image = a JPEG cut at half its length",
         lambda mb: ("POST", "/tag", _form(GOOD["text"], "cut.jpg", truncated_jpeg(), "image/jpeg")),
         422, "truncated"),
    Case("JPEG cut inside its header", "multipart, image = a JPEG's first 300 bytes",
         lambda mb: ("POST", "/tag", _form(GOOD["text"], "head.jpg", truncated_jpeg()[:300], "image/jpeg")),
         422, "truncated"),
    Case("decompression bomb", "multipart, image = a few-KB PNG declaring 30,000 x 30,000 pixels",
         lambda mb: ("POST", "/tag", _form(GOOD["text"], "bomb.png", bomb_png(), "image/png")),
         413, "900 megapixels, over the limit"),
    Case("upload over the size limit", "multipart, image of 1.5 x --max-upload-mb",
         lambda mb: ("POST", "/tag", _form(GOOD["text"], "big.jpg", photo_bytes() + os.urandom(int(1.5e6 * mb)),
                                           "image/jpeg")), 413, "over the limit"),
    Case("image path with ../", 'JSON {"image": "../outside.jpg"}',
         lambda mb: ("POST", "/tag", {"json": {**GOOD, "image": "../outside.jpg"}}), 403, "'..'"),
    Case("absolute image path", 'JSON {"image": "/etc/passwd"}',
         lambda mb: ("POST", "/tag", {"json": {**GOOD, "image": "/etc/passwd"}}), 403, "absolute paths"),
    Case("image path through a symlink out", 'JSON {"image": "link.jpg"} (link.jpg -> ../outside.jpg)',
         lambda mb: ("POST", "/tag", {"json": {**GOOD, "image": "link.jpg"}}), 403, "symlink"),
]


def probe(client, case: Case, limit_mb: float) -> dict:
    """Send ``case`` then a good post with ``client`` (an httpx client or a TestClient)."""
    method, url, kw = case.request(limit_mb)
    r = client.request(method, url, **kw)
    try:
        detail = r.json().get("detail")
    except ValueError:
        detail = r.text[:300]
    after = client.post("/tag", json=GOOD)
    return {"case": case.name, "sent": case.what, "status": r.status_code, "message": detail,
            "expected_status": case.status, "expected_says": case.says,
            "as_expected": r.status_code == case.status and case.says in str(detail),
            "next_status": after.status_code,
            "next_entities": [(e["text"], e["type"]) for e in after.json().get("entities", [])]
            if after.status_code == 200 else None}


def table(rows: list[dict], command: str) -> str:
    lines = [f"`{command}`", "",
             "| bad input | sent | status | message | next request |", "|---|---|---|---|---|"]
    for r in rows:
        msg = str(r["message"]).replace("|", "\\|")
        nxt = f"{r['next_status']} ({', '.join(f'{t} {y}' for t, y in r['next_entities'] or []) or 'no entity'})"
        lines.append(f"| {r['case']} | {r['sent'].replace('|', '/')} | {r['status']} | {msg} | {nxt} |")
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> dict:
    import httpx

    from benchmarks.provenance import RESULTS, command_line, write_rendering, write_result
    from benchmarks.serve_process import ServeProcess

    p = ArgumentParser(prog="python benchmarks/serve_bad_inputs.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", default=["runs/demo/rgcn/seed13"])
    p.add_argument("--max-upload-mb", type=float, default=20.0)
    p.add_argument("--output", default=str(RESULTS / "serve_bad_inputs.json"))
    p.add_argument("--import", dest="imports", action="append", default=[], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        images = prepare_images(Path(tmp))
        with ServeProcess(["--run", *a.run, "--images", images, "--max-upload-mb", a.max_upload_mb],
                          imports=tuple(a.imports), log=Path(tmp) / "serve.log") as server, \
                httpx.Client(base_url=server.url, timeout=120) as client:
            rows = [probe(client, case, a.max_upload_mb) for case in CASES]
            alive = server.proc.poll() is None
    payload = {"runs": a.run, "max_upload_mb": a.max_upload_mb, "server_alive_after_all": alive,
               "all_as_expected": all(r["as_expected"] and r["next_status"] == 200 for r in rows), "cases": rows}
    result = write_result(a.output, payload, __file__, argv)
    write_rendering(Path(a.output).with_suffix(".md"), result, table(rows, command_line(__file__, argv)))
    print(table(rows, result["provenance"]["command"]))
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
