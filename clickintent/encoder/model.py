"""The session encoder: multi-modal event vectors -> a small Transformer -> one L2-normalised vector.

Everything about the network is in this file: the config, the event embedding, the Transformer block and
the model with its two self-supervised heads. An event vector is the sum of projected parts (page id with
OOV buckets, bag of URL tokens, page-title and search-query text vectors, event type, device, dwell, time
gap, referrer class) plus a position; a [CLS] token is prepended, a pre-LayerNorm Transformer encoder reads
the sequence, and the [CLS] state is projected and L2-normalised. A page never seen in training still gets
its URL-token and text parts. The masked-event heads (page, event type) read the per-event states.

The event parts are read from the declared field table (fields.EVENT_FIELDS): one id embedding per field,
named after it. The forward pass is written in spellings ONNX can export (serve/onnx.py traces this very
forward): the URL-token mean is a masked sum, and an export always builds the padding mask.
What it leaves out: the objectives (objectives.py), featurization (features.py), and training (train.py).
Shapes: B sessions, T events (padded to the longest in the batch), D width, U distinct pages and S distinct
strings in the batch, K URL tokens per page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clickintent.encoder.batches import EventBatch
from clickintent.encoder.fields import CATEGORIES, EMBEDDED, EVENT_FIELDS, EventField
from clickintent.encoder.vocab import Vocab
from clickintent.urls import REFERRER_CLASSES

TEXT_FIELDS = tuple(f for f in EVENT_FIELDS if f.kind == "text")


@dataclass
class EncoderConfig:
    n_page_ids: int = 1 + 1024  # padding + known pages + OOV buckets (from the Vocab)
    # ids of each category field of fields.EVENT_FIELDS: padding, unknown, known values (from the Vocab);
    # encoder.json stores them flat, as n_<vocab_key> (n_event_types, n_devices)
    n_categories: dict[str, int] = field(default_factory=lambda: {f.name: 2 + len(f.always) for f in CATEGORIES})
    n_url_buckets: int = 4096  # hashed URL tokens, 0 = padding
    n_time_buckets: int = 16  # log2 buckets for dwell and time since the previous event
    n_referrer_classes: int = 1 + len(REFERRER_CLASSES)  # padding + direct/search/email/social/internal/other
    text_dim: int = 384  # width of the MiniLM sentence vectors
    max_events: int = 64  # positions (the featurizer keeps the last max_events events)
    d_model: int = 64  # width of event vectors and of the Transformer
    n_layers: int = 2  # Transformer blocks (2-4)
    n_heads: int = 4  # attention heads; d_model must divide by it
    d_ff: int = 128  # hidden width of each block's MLP
    out_dim: int = 64  # width of the session embedding
    dropout: float = 0.0  # on the blocks' residual branches (0 as in nanoGPT pre-training; 0.1 bought nothing)
    use_text: bool = True  # ablation switch: page-title and search-query vectors

    def for_vocab(self, vocab: Vocab) -> EncoderConfig:
        """This config with the vocabulary sizes of `vocab`."""
        return EncoderConfig(
            **{
                **asdict(self),
                "n_page_ids": vocab.n_page_ids,
                "n_categories": {f.name: vocab.n_ids(f) for f in CATEGORIES},
                "n_url_buckets": vocab.n_url_buckets,
                "n_time_buckets": vocab.n_time_buckets,
                "text_dim": vocab.text_dim,
                "max_events": vocab.max_events,
            }
        )

    def check_vocab(self, vocab: Vocab) -> None:
        """Raise ValueError if `vocab` does not produce the ids this config was built for."""
        wrong = [
            f"{k}: model {getattr(self, k)} != vocab {v}"
            for k, v in asdict(self.for_vocab(vocab)).items()
            if getattr(self, k) != v
        ]
        if wrong:
            raise ValueError("encoder config does not match the vocabulary: " + "; ".join(wrong))

    @property
    def n_event_types(self) -> int:
        return self.n_categories["event_type"]

    def n_ids(self, f: EventField) -> int:
        """Rows of the id embedding of an embedded field (fields.EMBEDDED)."""
        sizes = {"page": self.n_page_ids, "duration": self.n_time_buckets + 2, "gap": self.n_time_buckets + 2,
                 "referrer": self.n_referrer_classes}  # fmt: skip
        return self.n_categories[f.name] if f.kind == "category" else sizes[f.kind]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        cats = data.pop("n_categories")
        return {"n_page_ids": data.pop("n_page_ids"), **{f"n_{f.vocab_key}": cats[f.name] for f in CATEGORIES}, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderConfig:
        data = dict(data)
        missing = [f"n_{f.vocab_key}" for f in CATEGORIES if f"n_{f.vocab_key}" not in data]
        if missing:
            raise ValueError(f"encoder config has no {', '.join(missing)} (written before those event fields: retrain)")
        cats = {f.name: data.pop(f"n_{f.vocab_key}") for f in CATEGORIES}
        unknown = set(data) - {f.name for f in fields(cls)} - {"n_categories"}
        if unknown:
            raise ValueError(f"unknown encoder config keys: {sorted(unknown)}")
        return cls(**data, n_categories=cats)


class EventEmbedding(nn.Module):
    """Sum of the projected parts of each event, a [CLS] vector in front, plus positions."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        D = cfg.d_model
        self.use_text = cfg.use_text
        self.page = nn.Embedding(cfg.n_page_ids, D, padding_idx=0)
        self.url = nn.Embedding(cfg.n_url_buckets, D, padding_idx=0)  # averaged over a page's tokens in forward
        # one projection for all text fields: [:D] reads page titles, [D:2D] search queries (TEXT_FIELDS).
        # Bias-free, so "no text" (a zero row) adds nothing.
        self.text = nn.Linear(cfg.text_dim, len(TEXT_FIELDS) * D, bias=False)
        # one id embedding per other field of fields.EVENT_FIELDS, under the field's name (event_type, ...)
        self.id_fields = [f for f in EMBEDDED if f.kind != "page"]
        for f in self.id_fields:
            self.add_module(f.name, nn.Embedding(cfg.n_ids(f), D, padding_idx=0))
        self.pos = nn.Embedding(cfg.max_events + 1, D)  # 0 = [CLS]
        self.cls = nn.Parameter(torch.zeros(D))
        self.mask = nn.Parameter(torch.zeros(D))  # replaces the whole content of a masked event
        self.ln = nn.LayerNorm(D)
        # No dropout on the event vectors: on toy data it cut a linear topic probe on the contrastive
        # embedding from 0.95 to 0.58 (dropout inside the blocks did no harm), so it is left out.

    def forward(self, b: EventBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T = b.page.shape  # sessions, events
        D = self.cls.shape[0]
        # [U, K] tokens -> [U, D], the mean of each page's real tokens (0 is padding). Written as a masked
        # sum rather than nn.EmbeddingBag(mode="mean"), which ONNX has no operator for (same maths).
        present = (b.url_tokens != 0).to(self.url.weight.dtype)  # [U, K]
        url = (self.url(b.url_tokens) * present[..., None]).sum(1) / present.sum(1, keepdim=True).clamp(min=1.0)
        x = self.page(b.page) + url[b.url]  # [B, T, D]
        for f in self.id_fields:
            x = x + self.get_submodule(f.name)(b.ids[f.name])
        if self.use_text:
            text = self.text(b.text)  # [S, 384] -> [S, 2D]: each distinct string projected once
            for i, f in enumerate(TEXT_FIELDS):
                x = x + text[b.ids[f.name], i * D : (i + 1) * D]  # gathered to [B, T, D]
        if mask is not None:  # [B, T] bool
            x = torch.where(mask[..., None], self.mask.to(x.dtype), x)
        x = torch.cat([self.cls.expand(B, 1, -1), x], dim=1)  # [B, 1+T, D]
        x = x + self.pos.weight[: T + 1]  # positions 0..T
        return self.ln(x)


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0, "d_model must divide by n_heads"
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, first_only: bool = False) -> torch.Tensor:
        B, T, D = x.shape  # batch, 1+events, width
        H = self.n_heads
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x [B, T, D]
        if first_only:  # only the [CLS] query is needed (last block at inference)
            q = q[:, :1]
        q = q.view(B, -1, H, D // H).transpose(1, 2)  # [B, H, Tq, D/H]
        k = k.view(B, T, H, D // H).transpose(1, 2)  # [B, H, T, D/H]
        v = v.view(B, T, H, D // H).transpose(1, 2)
        # bias: [B, 1, 1, T], 0 for events and -inf for padding; None when the batch has no padding,
        # which lets SDPA take its faster unmasked path. No attention dropout: its random draws cost
        # more than they help at this size (measured).
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B, H, Tq, D/H]
        y = y.transpose(1, 2).reshape(B, -1, D)  # [B, Tq, D]
        return F.dropout(self.out(y), self.dropout, self.training)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, first_only: bool = False) -> torch.Tensor:
        a = self.attn(self.ln1(x), bias, first_only)  # [B, Tq, D]
        x = (x[:, :1] if first_only else x) + a
        h = F.gelu(self.fc(self.ln2(x)))  # [B, Tq, d_ff]
        return x + F.dropout(self.proj(h), self.dropout, self.training)


class SessionEncoder(nn.Module):
    """Events -> session embedding [B, out_dim] (unit length), and per-event states for the heads."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_events = EventEmbedding(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.out_dim)
        # masked-event heads (training only; kept in the bundle so next-page scores stay available)
        self.page_head = nn.Linear(cfg.d_model, cfg.n_page_ids)
        self.type_head = nn.Linear(cfg.d_model, cfg.n_event_types)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def forward(
        self, batch: EventBatch, mask: torch.Tensor | None = None, cls_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(z [B, out_dim] L2-normalised, h [B, T, D] per-event states or None when cls_only)."""
        x = self.embed_events(batch, mask)  # [B, 1+T, D]
        # additive attention mask [B, 1, 1, 1+T], only when some session is shorter than T (None lets SDPA
        # take its unmasked path); an ONNX export always builds it, since the graph serves any batch.
        bias = None
        if torch.onnx.is_in_onnx_export() or bool((batch.lengths < batch.page.shape[1]).any()):
            pad = torch.cat([batch.padding.new_zeros(x.shape[0], 1), batch.padding], dim=1)  # [B, 1+T]
            bias = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, float("-inf"))
            bias = bias[:, None, None, :]
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, bias, first_only=cls_only and i == last)
        x = self.ln_f(x)  # [B, 1+T, D] (or [B, 1, D] when cls_only)
        z = F.normalize(self.proj(x[:, 0]), dim=-1)  # [B, out_dim]
        return z, (None if cls_only else x[:, 1:])

    @torch.inference_mode()
    def embed(self, batch: EventBatch) -> torch.Tensor:
        """Session embeddings [B, out_dim] (eval mode, [CLS] only in the last block)."""
        z, _ = self(batch, cls_only=True)
        return z

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
