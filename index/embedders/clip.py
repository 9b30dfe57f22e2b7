"""open_clip image and text towers (any architecture; tag, local checkpoint or random).

No CLIP weights exist offline here. A pretrained *tag* is only tried when its weights are
already in the hub cache or the hub is reachable; otherwise :class:`PretrainedUnavailable`
is raised at once (instead of open_clip's minute of retries) and says how to point at a
checkpoint file or pick another embedder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from data.errors import UserError
from data.pretrained import hub_reachable

from .base import Embedder, EncodeOutput, autocast_context, l2_normalise, resolve_device, resolve_precision


class PretrainedUnavailable(UserError, RuntimeError):
    """Pretrained CLIP weights asked for by tag that cannot be loaded here."""


def _advice(model: str, pretrained: str) -> str:
    return (f"CLIP weights {model!r} / {pretrained!r} cannot be loaded: no network and not in the "
            "local cache. Point at a checkpoint file with --pretrained /path/to/checkpoint.pt "
            "(Python: get_embedder('clip', model=..., pretrained='/path/to/checkpoint.pt')), "
            "or use the offline ImageNet model with --embedder efficientnet_lite0.")


def _tag_cached(model: str, pretrained: str, cache_dir: str | None) -> bool:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        return False
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        parts = hub.strip("/").split("/")
        repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
        for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            fname = f"{sub}/{fname}" if sub else fname
            hit = try_to_load_from_cache(repo, fname, cache_dir=cache_dir)
            if isinstance(hit, str):
                return True
        return False
    url = cfg.get("url", "")
    root = Path(cache_dir or os.path.expanduser("~/.cache/clip"))
    return bool(url) and (root / os.path.basename(url)).is_file()


def check_pretrained(model: str, pretrained: str | None, cache_dir: str | None = None) -> None:
    """Fail fast on a pretrained value that cannot be loaded; return quietly otherwise."""
    import open_clip

    if pretrained is None or os.path.isfile(pretrained):
        return
    if pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or os.sep in pretrained:
        raise FileNotFoundError(f"CLIP checkpoint {pretrained!r} does not exist. "
                                + _advice(model, pretrained))
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in tags:
        raise PretrainedUnavailable(f"{pretrained!r} is neither a file nor a pretrained tag of "
                                    f"{model!r} (tags: {', '.join(tags) or 'none'}). "
                                    + _advice(model, pretrained))
    if not _tag_cached(model, pretrained, cache_dir) and not hub_reachable():
        raise PretrainedUnavailable(_advice(model, pretrained))


def register_model_config(path: str | os.PathLike) -> str:
    """Make a JSON model config (open_clip's format) available; returns its model name
    (the file stem)."""
    import open_clip

    path = Path(path)
    json.loads(path.read_text())  # a clear JSONDecodeError on a broken file
    open_clip.add_model_config(path)
    return path.stem


class ClipEmbedder(Embedder):
    """open_clip model: image tower (+ patch tokens as regions for ViTs) and text tower.

    Args:
        model: an open_clip architecture (``open_clip.list_models()``), or a path to a JSON
            model config in open_clip's format (registered under the file stem).
        pretrained: ``None`` (random weights), a pretrained tag, or a checkpoint file.
        tag_vocabulary: labels for CLIP zero-shot object tags, each scored by the image's
            similarity to the prompt "a photo of a {label}." (default: ImageNet-1k when
            ``pretrained`` is given; random weights give no tags unless a vocabulary is given).
        device, precision: as for every embedder.
    """

    name = "clip"
    library = "open_clip"
    tag_method = "zero-shot"

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = None,
                 tag_vocabulary: list[str] | None = None, device: str | None = "auto",
                 precision: str | None = "auto", cache_dir: str | None = None):
        import open_clip

        model_arg = str(model)
        if str(model).endswith(".json"):
            model = register_model_config(model)
        if model not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model!r}; valid: "
                             f"{', '.join(open_clip.list_models())}")
        check_pretrained(model, pretrained, cache_dir)
        try:
            net, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=pretrained, cache_dir=cache_dir)
        except RuntimeError as e:
            if pretrained is not None and not os.path.isfile(pretrained):
                raise PretrainedUnavailable(f"{e}. " + _advice(model, pretrained)) from e
            raise
        self.model_name = model
        self.model_arg = model_arg
        self.tag = pretrained
        self.net = net.eval()
        self.transform = preprocess
        self.tokenizer = open_clip.get_tokenizer(model)
        self.has_text = True
        with torch.no_grad():
            probe = self.net.encode_text(self.tokenizer(["a"]))
        self.dim = int(probe.shape[-1])
        visual = self.net.visual
        self.has_regions = hasattr(visual, "output_tokens") and getattr(visual, "proj", None) is not None
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net.to(self.device)
        self.tag_labels: list[str] = []
        self._label_matrix = None
        self.user_vocabulary = bool(tag_vocabulary)
        if tag_vocabulary is None and pretrained is not None:
            from .timm_backbone import imagenet_labels

            tag_vocabulary = imagenet_labels()
        if tag_vocabulary:
            self.tag_labels = [str(lab) for lab in tag_vocabulary]

    def to(self, device):
        self.device = torch.device(device)
        self.net.to(self.device)
        if self._label_matrix is not None:                  # the cached prompt embeddings follow
            self._label_matrix = self._label_matrix.to(self.device)
        return self

    def _labels(self) -> torch.Tensor:
        if self._label_matrix is None:
            prompts = [f"a photo of a {lab.split(',')[0]}." for lab in self.tag_labels]
            self._label_matrix = torch.from_numpy(self.embed_texts(prompts)).to(self.device)
        return self._label_matrix

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, regions: bool = False, logits: bool = False) -> EncodeOutput:
        pixels = pixels.to(self.device, non_blocking=True)
        visual = self.net.visual
        want_tokens = regions and self.has_regions
        with autocast_context(self.device, self.precision):
            if want_tokens:
                visual.output_tokens = True
                try:
                    pooled, tokens = visual(pixels)                  # (B, D), (B, P, width)
                finally:
                    visual.output_tokens = False
                tokens = tokens @ visual.proj                        # (B, P, D)
            else:
                pooled = self.net.encode_image(pixels)               # (B, D)
        emb = l2_normalise(pooled.float().cpu().numpy())
        out = EncodeOutput(emb)
        if want_tokens:
            out.regions = tokens.float().cpu().numpy()
        if logits and self.tag_labels:
            scale = float(self.net.logit_scale.exp()) if hasattr(self.net, "logit_scale") else 100.0
            out.logits = (scale * (torch.from_numpy(emb).to(self.device) @ self._labels().T)).cpu().numpy()
        return out

    @torch.inference_mode()
    def embed_texts(self, texts) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        tokens = self.tokenizer(texts).to(self.device)
        with autocast_context(self.device, self.precision):
            feats = self.net.encode_text(tokens)
        return l2_normalise(feats.float().cpu().numpy())

    def describe(self) -> dict:
        d = super().describe()
        d.update(model=self.model_name, region_kind="projected patch tokens" if self.has_regions else None,
                 tag_vocabulary=(None if not self.tag_labels else "user" if self.user_vocabulary
                                 else "imagenet-1k"))
        return d

    def config(self) -> dict:
        cfg = {"model": self.model_arg, "pretrained": self.tag}
        if self.user_vocabulary:
            cfg["tag_vocabulary"] = list(self.tag_labels)
        return cfg
