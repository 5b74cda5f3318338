"""ViViT as transformers defines it (VivitModel, VivitForVideoClassification), with its layers in layers.py.

torch only: no files, no video, no Hub. Checkpoint key names live in checkpoint.py's converter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from vivit_cli.config import ACTIVATIONS, PROBLEM_TYPES, VivitConfig
from vivit_cli.errors import VivitError
from vivit_cli.layers import Block, Embeddings, activation

__all__ = [
    "ACTIVATIONS",
    "PROBLEM_TYPES",
    "Embeddings",
    "VideoClassifierOutput",
    "VivitConfig",
    "VivitForVideoClassification",
    "VivitModel",
    "VivitModelOutput",
    "classification_loss",
    "init_weights",
]


@dataclass
class VivitModelOutput:
    last_hidden_state: Tensor  # (B, N+1, D)
    pooler_output: Tensor | None = None  # (B, D)
    hidden_states: tuple[Tensor, ...] | None = None  # num_layers + 1 of (B, N+1, D)
    attentions: tuple[Tensor, ...] | None = None  # num_layers of (B, heads, N+1, N+1)


@dataclass
class VideoClassifierOutput:
    logits: Tensor  # (B, num_labels)
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


def _head_masks(head_mask: Tensor | None, layers: int) -> list[Tensor | None]:
    """(heads,) applies to every layer; (layers, heads) gives one row per layer."""
    if head_mask is None:
        return [None] * layers
    if head_mask.dim() == 1:
        return [head_mask] * layers
    if head_mask.dim() == 2 and head_mask.shape[0] == layers:
        return list(head_mask)
    raise VivitError(f"head_mask must be (heads,) or ({layers}, heads), got {tuple(head_mask.shape)}")


class VivitModel(nn.Module):
    """The ViViT encoder: tokens, blocks, final LayerNorm and an optional tanh pooler on the CLS token."""

    def __init__(self, config: VivitConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = None
        if add_pooling_layer:
            self.pooler = nn.Sequential(
                nn.Linear(config.hidden_size, config.pooler_output_size or config.hidden_size),
                activation(config.pooler_act),
            )
        self.gradient_checkpointing = False
        if not self.norm.weight.is_meta:  # on the meta device a checkpoint's weights replace these anyway
            init_weights(self, config.initializer_range)
        self.prune_heads(config.pruned_heads)

    def prune_heads(self, heads_to_prune: Mapping[int, Iterable[int]]) -> None:
        """Remove attention heads: {layer: [heads]} in the checkpoint's original head numbering."""
        for layer, heads in heads_to_prune.items():
            self.blocks[layer].attn.prune(heads)

    @property
    def pruned_heads(self) -> dict[int, tuple[int, ...]]:
        return {i: tuple(sorted(b.attn.pruned)) for i, b in enumerate(self.blocks) if b.attn.pruned}

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        self.gradient_checkpointing = enable

    def forward(
        self,
        pixel_values: Tensor,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        cls_only: bool = False,
        interpolate_pos_encoding: bool | None = None,  # accepted for transformers compatibility; always on
    ) -> VivitModelOutput:
        """pixel_values (B, T, C, H, W) -> last_hidden_state (B, N+1, D); cls_only: the last block's CLS alone."""
        x = self.embeddings(pixel_values)  # (B, N+1, D)
        hidden, attentions = [], []
        masks = _head_masks(head_mask, len(self.blocks))
        for i, block in enumerate(self.blocks):
            if output_hidden_states:
                hidden.append(x)
            last_cls = cls_only and i == len(self.blocks) - 1
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x, probs = grad_checkpoint(block, x, masks[i], output_attentions, last_cls, use_reentrant=False)
            else:
                x, probs = block(x, masks[i], output_attentions, last_cls)
            if output_attentions:
                attentions.append(probs)
        if output_hidden_states:
            hidden.append(x)
        x = self.norm(x)  # (B, N+1, D), or (B, 1, D) with cls_only
        return VivitModelOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x[:, 0]) if self.pooler is not None else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class VivitForVideoClassification(nn.Module):
    """ViViT with a linear head on the final CLS token (no pooler), and the loss transformers would compute."""

    def __init__(self, config: VivitConfig) -> None:
        super().__init__()
        self.config = config
        self.vivit = VivitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels else nn.Identity()
        if not self.vivit.norm.weight.is_meta:
            init_weights(self.classifier, config.initializer_range)

    def prune_heads(self, heads_to_prune: Mapping[int, Iterable[int]]) -> None:
        self.vivit.prune_heads(heads_to_prune)

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        self.vivit.gradient_checkpointing_enable(enable)

    def forward(
        self,
        pixel_values: Tensor,
        labels: Tensor | None = None,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        interpolate_pos_encoding: bool | None = None,
    ) -> VideoClassifierOutput:
        """pixel_values (B, T, C, H, W) -> logits (B, num_labels), and the loss when labels are given."""
        # The logits read only the CLS token, so unless every token's output is asked for, the last block
        # computes the CLS row alone: the same numbers for less work.
        cls_only = not (output_attentions or output_hidden_states)
        out = self.vivit(pixel_values, head_mask, output_attentions, output_hidden_states, cls_only=cls_only)
        logits = self.classifier(out.last_hidden_state[:, 0])  # (B, num_labels)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return VideoClassifierOutput(logits, loss, out.hidden_states, out.attentions)


def classification_loss(logits: Tensor, labels: Tensor, config: VivitConfig) -> Tensor:
    """Cross-entropy, MSE or BCE as transformers picks them from problem_type (inferred when unset)."""
    n = config.num_labels
    kind = config.problem_type
    if kind is None:
        if n == 1:
            kind = "regression"
        elif labels.dtype in (torch.long, torch.int):
            kind = "single_label_classification"
        else:
            kind = "multi_label_classification"
    if kind == "regression":
        if n == 1:
            logits, labels = logits.squeeze(), labels.squeeze()
        return F.mse_loss(logits, labels.to(logits.dtype))
    if kind == "single_label_classification":
        return F.cross_entropy(logits.view(-1, n), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


@torch.no_grad()
def init_weights(module: nn.Module, std: float) -> None:
    """transformers' initialisation: N(0, std) for linear and conv, zero biases and tokens, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, Embeddings):
            m.cls_token.zero_()
            m.position_embeddings.zero_()
