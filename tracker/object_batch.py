"""Several objects through one SAM 2 tracking step as one batch (used by :mod:`tracker.session` only).

SAM 2's ``propagate_in_video`` (sam2 1.1.0) runs every object through memory attention, the
mask decoder and the memory encoder on its own (``batch_size=1``), and recomputes for each what
is the same for all: the first memory-attention layer's self-attention reads only the current
frame's features, and the memory encoder's ``pix_feat_proj`` projects the frame's (not the
object's) features. This module runs the objects of one frame that share a *memory layout* (the
same number of memory tokens and of object-pointer tokens, and the same dtypes; positional
encodings may differ per object) as one batch, and computes those shared parts once per frame.

Same model, same operations in the same order as SAM 2's ``track_step`` for a tracked
(non-conditioning) frame without prompts; what differs is only the batch size of the matrix
products, so the numbers agree with plain SAM 2 up to float rounding (``tests/test_object_batching.py``
states and checks the tolerance). Which memories an object reads is decided by SAM 2's own
``_prepare_memory_conditioned_features``, called on a stand-in that captures its inputs to
memory attention instead of running it.

Nothing here touches SAM 2's ``inference_state``: the session hands in each object's
``output_dict`` and the frame's backbone features, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class BatchLimit:
    """How many objects go through SAM 2 together: at most ``objects``, and at most
    ``attention_tokens`` (memory attention, mask decoder) or ``encoder_tokens`` (memory encoder)
    feature tokens (``(image_size / 16)²`` per object) in one batch."""

    attention_tokens: int
    encoder_tokens: int
    objects: int

    def per_batch(self, tokens: int, encoder: bool = False) -> int:
        budget = self.encoder_tokens if encoder else self.attention_tokens
        return max(1, min(self.objects, budget // max(1, tokens)))


# On this project's 2-core CPU, pairs were fastest (tiny, 16 objects: 256 → 0.84×, 512 → 0.94× of
# one by one); bigger batches spill out of the caches and were slower than none. A GPU takes many.
BATCH_LIMITS = {
    "cpu": BatchLimit(2048, 1024, 2),
    "cuda": BatchLimit(65536, 32768, 64),
    "mps": BatchLimit(16384, 8192, 16),
}


def supports(predictor: Any) -> bool:
    """True when ``predictor`` is the plain SAM 2 this module reproduces (not the compiled VOS class)."""
    from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
    from sam2.modeling.memory_encoder import MemoryEncoder
    from sam2.modeling.sam2_base import SAM2Base

    cls = type(predictor)
    same_methods = all(
        getattr(cls, name, None) is getattr(SAM2Base, name)
        for name in ("_prepare_memory_conditioned_features", "_forward_sam_heads", "_encode_new_memory")
    )
    attention: Any = getattr(predictor, "memory_attention", None)
    helpers = all(
        hasattr(predictor, name) for name in ("_get_image_feature", "_get_maskmem_pos_enc", "_use_multimask")
    )
    return (
        same_methods
        and helpers
        and type(attention) is MemoryAttention
        and bool(attention.batch_first)
        and all(type(layer) is MemoryAttentionLayer for layer in attention.layers)
        and type(predictor.memory_encoder) is MemoryEncoder
        and int(predictor.num_maskmem) > 0
        and not predictor.training
    )


@dataclass
class FrameFeatures:
    """One frame's backbone features at batch 1 (``(HW)×1×C`` lists, as SAM 2's ``_get_image_feature``).

    The parts every object shares are computed on first use and kept for the frame.
    """

    predictor: Any
    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]
    _first_self_attention: torch.Tensor | None = field(default=None, repr=False)
    _projected: torch.Tensor | None = field(default=None, repr=False)

    @property
    def tokens(self) -> int:
        height, width = self.feat_sizes[-1]
        return int(height) * int(width)

    def pix_feat(self) -> torch.Tensor:
        """The top-level feature map, ``1×C×H×W`` (what the memory encoder reads)."""
        height, width = self.feat_sizes[-1]
        feats = self.vision_feats[-1]
        return feats.permute(1, 2, 0).view(1, feats.shape[2], height, width)

    def first_self_attention(self) -> torch.Tensor:
        """Memory attention's input through its first layer's self-attention, ``1×HW×C`` (batch first)."""
        if self._first_self_attention is None:
            attention = self.predictor.memory_attention
            curr, curr_pos = self.vision_feats[-1], self.vision_pos[-1]
            output = curr + 0.1 * curr_pos if attention.pos_enc_at_input else curr
            self._first_self_attention = attention.layers[0]._forward_sa(
                output.transpose(0, 1), curr_pos.transpose(0, 1)
            )
        return self._first_self_attention

    def projected(self) -> torch.Tensor:
        """The memory encoder's ``pix_feat_proj`` of the frame, ``1×C×H×W``."""
        if self._projected is None:
            self._projected = self.predictor.memory_encoder.pix_feat_proj(self.pix_feat())
        return self._projected


@dataclass
class ObjectMemory:
    """What one object attends to on this frame: ``memory`` / ``memory_pos`` ``L×1×C_mem``."""

    index: int  # the caller's key (SAM 2's object index)
    memory: torch.Tensor
    memory_pos: torch.Tensor
    num_ptr_tokens: int

    @property
    def layout(self) -> tuple[int, int, torch.dtype, torch.dtype]:
        return (self.memory.shape[0], self.num_ptr_tokens, self.memory.dtype, self.memory_pos.dtype)


class _Capture:
    """Stands in for the predictor in ``_prepare_memory_conditioned_features``: every attribute is
    the predictor's, except ``memory_attention``, which records its inputs and returns the
    current features unchanged (so the caller's reshaping still works)."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor
        self.captured: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def memory_attention(
        self, *, curr: Any, curr_pos: Any, memory: Any, memory_pos: Any, num_obj_ptr_tokens: int
    ) -> Any:
        self.captured = {
            "memory": memory,
            "memory_pos": memory_pos,
            "num_ptr_tokens": int(num_obj_ptr_tokens),
        }
        return curr[0] if isinstance(curr, list) else curr


def gather_memory(
    frame: FrameFeatures,
    index: int,
    output_dict: dict[str, Any],
    frame_idx: int,
    num_frames: int,
    reverse: bool,
) -> ObjectMemory:
    """The memory one object reads on ``frame_idx``, chosen by SAM 2's own code (a tracked frame)."""
    predictor = frame.predictor
    capture = _Capture(predictor)
    type(predictor)._prepare_memory_conditioned_features(
        capture,
        frame_idx=frame_idx,
        is_init_cond_frame=False,
        current_vision_feats=frame.vision_feats[-1:],
        current_vision_pos_embeds=frame.vision_pos[-1:],
        feat_sizes=frame.feat_sizes[-1:],
        output_dict=output_dict,
        num_frames=num_frames,
        track_in_reverse=reverse,
    )
    if not capture.captured:
        raise RuntimeError("SAM 2 did not reach memory attention for a tracked frame (unsupported config)")
    return ObjectMemory(index, **capture.captured)


def limit_for(device_type: str) -> BatchLimit:
    return BATCH_LIMITS.get(device_type, BATCH_LIMITS["cpu"])


def chunks(memories: list[ObjectMemory], tokens: int, limit: BatchLimit) -> Iterator[list[ObjectMemory]]:
    """``memories`` grouped by layout (first-seen order), each group cut to ``limit``'s batches."""
    groups: dict[tuple[Any, ...], list[ObjectMemory]] = {}
    for memory in memories:
        groups.setdefault(memory.layout, []).append(memory)
    size = limit.per_batch(tokens)
    for group in groups.values():
        for start in range(0, len(group), size):
            yield group[start : start + size]


@dataclass
class BatchOutput:
    """SAM 2's ``track_step`` outputs for a batch of ``B`` objects (batch dimension first)."""

    low_res_masks: torch.Tensor  # B×1×h×w logits
    obj_ptr: torch.Tensor  # B×C
    object_score_logits: torch.Tensor  # B×1
    maskmem_features: torch.Tensor  # B×C_mem×H×W
    maskmem_pos_enc: list[torch.Tensor]  # each B×C_mem×H×W


def track_batch(frame: FrameFeatures, memories: list[ObjectMemory]) -> BatchOutput:
    """``track_step`` on a tracked frame (no prompts, memory encoder run) for objects of one layout."""
    predictor = frame.predictor
    batch = len(memories)
    height, width = frame.feat_sizes[-1]
    conditioned = _attend(frame, memories)  # HW×B×C
    pix_feat = conditioned.permute(1, 2, 0).view(batch, conditioned.shape[2], height, width)
    high_res = [
        x.permute(1, 2, 0).view(1, x.size(2), *s).expand(batch, -1, -1, -1)
        for x, s in zip(frame.vision_feats[:-1], frame.feat_sizes[:-1], strict=True)
    ]
    sam_outputs = predictor._forward_sam_heads(
        backbone_features=pix_feat,
        point_inputs=None,
        mask_inputs=None,
        high_res_features=high_res or None,
        multimask_output=predictor._use_multimask(False, None),
    )
    _, _, _, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
    step = limit_for(frame.vision_feats[-1].device.type).per_batch(frame.tokens, encoder=True)
    encoded = [
        _encode_memory(frame, high_res_masks[i : i + step], object_score_logits[i : i + step])
        for i in range(0, batch, step)
    ]
    features = torch.cat([f for f, _ in encoded]) if len(encoded) > 1 else encoded[0][0]
    positions = [torch.cat(p) for p in zip(*(p for _, p in encoded), strict=True)]
    return BatchOutput(low_res_masks, obj_ptr, object_score_logits, features, positions)


def _attend(frame: FrameFeatures, memories: list[ObjectMemory]) -> torch.Tensor:
    """``MemoryAttention.forward`` for a batch, its first self-attention shared (see the module doc)."""
    from sam2.modeling.sam.transformer import RoPEAttention

    attention = frame.predictor.memory_attention
    batch = len(memories)
    memory = torch.cat([m.memory for m in memories], dim=1).transpose(0, 1)
    memory_pos = torch.cat([m.memory_pos for m in memories], dim=1).transpose(0, 1)
    query_pos = frame.vision_pos[-1].transpose(0, 1).expand(batch, -1, -1)
    num_ptr = memories[0].num_ptr_tokens
    output = frame.first_self_attention().expand(batch, -1, -1)
    for number, layer in enumerate(attention.layers):
        kwds = {"num_k_exclude_rope": num_ptr} if isinstance(layer.cross_attn_image, RoPEAttention) else {}
        if number == 0:  # MemoryAttentionLayer.forward after its self-attention
            tgt = layer._forward_ca(output, memory, query_pos, memory_pos, **kwds)
            tgt2 = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(tgt)))))
            output = tgt + layer.dropout3(tgt2)
        else:
            output = layer(tgt=output, memory=memory, pos=memory_pos, query_pos=query_pos, **kwds)
    return attention.norm(output).transpose(0, 1)


def _encode_memory(
    frame: FrameFeatures, high_res_masks: torch.Tensor, object_score_logits: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``SAM2Base._encode_new_memory`` + ``MemoryEncoder.forward`` for a batch of tracked masks.

    The frame's projection is shared; the masks are the decoder's (not from clicks, so never
    binarised). ``non_overlap_masks_for_mem_enc`` is a no-op at SAM 2's batch size 1, so it is
    not applied here either.
    """
    predictor = frame.predictor
    encoder = predictor.memory_encoder
    mask_for_mem = torch.sigmoid(high_res_masks)
    if predictor.sigmoid_scale_for_mem_enc != 1.0:
        mask_for_mem = mask_for_mem * predictor.sigmoid_scale_for_mem_enc
    if predictor.sigmoid_bias_for_mem_enc != 0.0:
        mask_for_mem = mask_for_mem + predictor.sigmoid_bias_for_mem_enc
    masks = encoder.mask_downsampler(mask_for_mem)
    x = frame.projected().to(masks.device) + masks
    x = encoder.out_proj(encoder.fuser(x))
    pos = encoder.position_encoding(x).to(x.dtype)
    if predictor.no_obj_embed_spatial is not None:
        is_obj_appearing = (object_score_logits > 0).float()
        x += (1 - is_obj_appearing[..., None, None]) * predictor.no_obj_embed_spatial[..., None, None].expand(
            *x.shape
        )
    return x, [pos]
