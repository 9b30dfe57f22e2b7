"""benchmarks/doc_commands.py: which lines of a page are commands, and how a run is recorded."""
from __future__ import annotations

import json

from benchmarks import doc_commands as dc

PAGE = """# A page

```bash
make demo            # the main job
# a comment line

python -m rgcn predict --run runs/demo/rgcn/seed13 \\
    --input posts.jsonl --format jsonl
```

Some text with `python -m not_a_command` inline.

```text
python -m rgcn predict --run RUN_DIR --input FILE
```

```python
from rgcn import load_tagger
```

- a list item holds a block:

  ```sh
  python -m index info .cache/demo/index
  ```

```console
$ python -m data prepare --data a.txt --images imgs --out prep
split   posts
train   3
$ echo done
done
```

~~~bash
make test
~~~
"""


def test_the_commands_of_a_page_in_order():
    got = [(c.line, c.text) for c in dc.extract(PAGE, "docs/x.md")]
    assert got == [
        (4, "make demo            # the main job"),
        (7, "python -m rgcn predict --run runs/demo/rgcn/seed13 \\\n--input posts.jsonl --format jsonl"),
        (24, "python -m index info .cache/demo/index"),
        (28, "python -m data prepare --data a.txt --images imgs --out prep"),
        (31, "echo done"),
        (36, "make test"),
    ]
    assert all(c.page == "docs/x.md" for c in dc.extract(PAGE, "docs/x.md"))


def test_an_unclosed_block_and_a_longer_fence():
    assert [c.text for c in dc.extract("````bash\necho a\n```\necho b\n````\necho c\n")] == ["echo a", "```", "echo b"]
    assert [c.text for c in dc.extract("```bash\necho a \\\n")] == ["echo a \\"]
    assert dc.extract("```\necho untagged\n```\n") == []


def test_pages_are_the_readme_then_docs_sorted(tmp_path):
    (tmp_path / "docs" / "heads").mkdir(parents=True)
    (tmp_path / "README.md").write_text("```bash\necho readme\n```\n")
    (tmp_path / "docs" / "b.md").write_text("```sh\necho b\n```\n")
    (tmp_path / "docs" / "heads" / "a.md").write_text("```sh\necho heads-a\n```\n")
    (tmp_path / "docs" / "a.md").write_text("```sh\necho a\n```\n")
    assert [(c.page, c.text) for c in dc.all_commands(tmp_path)] == [
        ("README.md", "echo readme"), ("docs/a.md", "echo a"), ("docs/b.md", "echo b"),
        ("docs/heads/a.md", "echo heads-a")]


def test_a_run_records_each_status_and_stops_a_long_command(tmp_path, capsys):
    (tmp_path / "README.md").write_text("```bash\ntrue\nexit 3\nsleep 30; echo never\necho $HF_HUB_OFFLINE > env.txt\n"
                                        "pwd\npython\n```\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("#!/bin/sh\necho the checkout venv\n")
    (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    out = tmp_path / "res" / "doc_commands.json"
    assert dc.main(["--checkout", str(tmp_path), "--list"]) == 0
    assert "  1  README.md:3  exit 3" in capsys.readouterr().out
    result = dc.main(["--checkout", str(tmp_path), "--timeout", "1", "--out", str(out)])
    statuses = [c["status"] for c in result["commands"]]
    assert statuses == [0, 3, dc.STOPPED, 0, 0, 0]
    assert result["commands"][2]["seconds"] < 15 and (tmp_path / "env.txt").read_text() == "1\n"
    assert result["commands"][4]["last_lines"] == [str(tmp_path.resolve())]           # run in the checkout
    assert result["commands"][5]["last_lines"] == ["the checkout venv"]                 # `python` is the venv's
    assert (result["ok"], result["stopped"], result["failed"]) == (4, 1, 1)
    saved = json.loads(out.read_text())
    assert saved["provenance"]["command"].startswith("python benchmarks/doc_commands.py --checkout")
    md = out.with_suffix(".md").read_text()
    assert "| 2 | README.md:4 | `sleep 30; echo never` | still running at the limit, stopped |" in md
    assert dc.main(["--checkout", str(tmp_path), "--only", "9", "--out", str(out)]) == 2
