"""Self-supervised objectives: masked-event prediction and CoLES-style contrastive sub-sequences.

- Masked events (BERT-style, over whole events): a share of events has its entire content replaced by a
  learned [MASK] vector (the position stays), and the model predicts the masked page id and event type.
- Contrastive sub-sequences (CoLES, Babaev et al. 2022, arXiv:2002.08232): two random contiguous slices of
  the same session are positives, the other sessions' slices in the batch are negatives. CoLES uses a
  margin loss; here it is InfoNCE with a temperature, which needs no negative mining.

Both run on the same forward pass in training (masked slices), which halves the cost of two passes.
The sampling helpers use a numpy Generator so a training step is reproducible from its seed.
What it leaves out: the training loop (train.py) and any hard-negative mining.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from clickintent.encoder.batches import EventBatch
from clickintent.encoder.model import SessionEncoder


def sample_subsequences(
    lengths: np.ndarray, rng: np.random.Generator, n_views: int = 2, min_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n_views` random contiguous slices per session, view-major.

    Returns (rows [V*B] session index into `lengths`, starts [V*B], view lengths [V*B]); each slice keeps
    between ceil(min_fraction * L) and L events (at least 1 for a non-empty session).
    """
    lengths = np.asarray(lengths, np.int64)
    B = len(lengths)
    L = np.tile(lengths, n_views)  # [V*B]
    lo = np.maximum(1, np.ceil(min_fraction * L)).astype(np.int64)
    lo = np.minimum(lo, L)
    V_B = n_views * B
    view = lo + np.floor(rng.random(V_B) * (L - lo + 1)).astype(np.int64)
    view = np.minimum(view, L)
    start = np.floor(rng.random(V_B) * (L - view + 1)).astype(np.int64)
    return np.tile(np.arange(B), n_views), start, view


def mask_events(lengths: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """[B, T] bool: each real event masked with probability `rate`; at least one per session of >= 2."""
    lengths = np.asarray(lengths, np.int64)
    B, T = len(lengths), int(lengths.max()) if len(lengths) else 0
    valid = np.arange(T)[None, :] < lengths[:, None]
    mask = (rng.random((B, T)) < rate) & valid
    need = (mask.sum(1) == 0) & (lengths >= 2)
    if need.any():
        pick = np.floor(rng.random(int(need.sum())) * lengths[need]).astype(np.int64)
        mask[np.flatnonzero(need), pick] = True
    return mask


def drop_pages(batch: EventBatch, rate: float, rng: np.random.Generator) -> EventBatch:
    """Swap known page ids for their OOV bucket with probability `rate`, so the model learns to embed
    pages from their URL tokens and text alone (what an unseen page has)."""
    if rate <= 0:
        return batch
    drop = torch.from_numpy(rng.random(tuple(batch.page.shape)) < rate).to(batch.page.device)
    page = torch.where(drop & (batch.page > 0), batch.page_bucket, batch.page)
    return batch.replace(page=page)


def masked_counts(batch: EventBatch, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(page targets, event-type targets) among the masked events of `batch`, at least 1 each; targets 0
    (an event without a page) are ignored by the loss and not counted."""
    return (batch.page[mask] != 0).sum().clamp(min=1), (batch.event_type[mask] != 0).sum().clamp(min=1)


def masked_event_loss(
    model: SessionEncoder,
    h: torch.Tensor,
    batch: EventBatch,
    mask: torch.Tensor,
    counts: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the page and event-type heads at masked positions: (page loss, type loss).

    Each is the sum over the masked events divided by `counts` (page targets, type targets), by default
    `masked_counts(batch, mask)`, which makes them this batch's means. A data-parallel replica passes the
    counts of the whole global batch, so that the shards' losses add up to the global batch's means.
    `batch` must hold the true page ids (before page dropout); h is [B, T, D] and mask [B, T].
    """
    n_page, n_type = masked_counts(batch, mask) if counts is None else counts
    hm = h[mask]  # [M, D]
    if hm.shape[0] == 0:
        zero = h.sum() * 0.0
        return zero, zero
    page = F.cross_entropy(model.page_head(hm), batch.page[mask], ignore_index=0, reduction="sum")
    etype = F.cross_entropy(model.type_head(hm), batch.event_type[mask], ignore_index=0, reduction="sum")
    return page / n_page, etype / n_type


def contrastive_loss(z: torch.Tensor, n_views: int, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between view 0 and view 1 of each session; z is [2*B, out] (view-major, unit)."""
    if n_views != 2:
        raise ValueError("contrastive_loss needs exactly two views per session")
    B = z.shape[0] // 2
    z1, z2 = z[:B], z[B:]  # [B, out] each
    logits = z1 @ z2.T / temperature  # [B, B]; the diagonal holds the positives
    target = torch.arange(B, device=z.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
