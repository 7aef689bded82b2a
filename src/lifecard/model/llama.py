"""The Llama-family forward (Llama 2/3, Mistral, Qwen2, SmolLM2) with life-card sockets.

One file, top to bottom: rotary embeddings, the KV cache, attention, MLP, decoder layer, model.
Base weights are frozen and fused (q|k|v and gate|up run as one matmul each); every projection
output passes through `Plugs.lora_delta`, every layer output through `Plugs.steer`.

Rows of one batch may have different lengths: each row carries its own positions [b, t], and the
cache is indexed by those positions, so prefill of ragged prompts and decode of rows at different
lengths are the same code path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifecard.model.config import ConfigError, ModelConfig
from lifecard.model.sockets import Plugs


def rope_inv_freq(cfg: ModelConfig) -> Tensor:
    """[head_dim/2] inverse frequencies, with Llama 3 / linear scaling when the config asks for it."""
    inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    scaling = cfg.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv.float()
    if kind == "linear":
        return (inv / float(scaling["factor"])).float()
    if kind == "llama3":
        factor, lo, hi = float(scaling["factor"]), scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_ctx = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        scaled = torch.where(wavelen > old_ctx / lo, inv / factor, inv)
        mid = (wavelen <= old_ctx / lo) & (wavelen >= old_ctx / hi)
        return torch.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled).float()
    raise ConfigError(
        f"rope_scaling type {kind!r} is not supported: lifecard runs default, linear and llama3"
    )


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: [b, t, heads, head_dim]; cos/sin: [b, t, 1, head_dim] (HF's rotate-half layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class KVCache:
    """Keys and values of every layer for `batch` rows: k, v [layers, batch, kv_heads, max_len, head_dim].

    Positions index the cache directly; the caller tracks how many positions of each row are real.
    Passed to the forward as an argument, never hidden inside the model.
    """

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, dtype: torch.dtype, device="cpu"):
        shape = (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def rows(self, start: int, stop: int) -> KVCache:
        """Rows start..stop-1 as a cache of their own, sharing this one's memory (no copy)."""
        view = KVCache.__new__(KVCache)
        view.k, view.v = self.k[:, start:stop], self.v[:, start:stop]
        return view

    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` positions of row src into row dst (a scheduler compacting its rows)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def reorder(self, rows: Tensor) -> None:
        """Keep rows[j] as row j (beam search): rows [batch'] indices into the current rows."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)


def decode_attention(q: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
    """One query per row. q: [b, 1, heads, hd]; keys/values: [b, kv_heads, L, hd]; mask [b, 1, 1, L].
    Returns [b, heads, hd], in q's dtype.

    Two small matmuls in float32: on this CPU they beat both the bf16 SDPA kernel and bf16 matmuls
    at this shape (BENCHMARKS.md), and fp32 scores are the more exact ones. Query heads are grouped
    by the kv head they share (head h reads kv head h // group), so the cache is never repeated.
    """
    b, _, heads, hd = q.shape
    kv_heads = keys.shape[1]
    qg = q.view(b, kv_heads, heads // kv_heads, hd).float()
    scores = (qg @ keys.float().transpose(-1, -2)) * hd**-0.5  # [b, kv_heads, group, L]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(dim=-1) @ values.float()).to(q.dtype).view(b, heads, hd)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, wqkv: Tensor, bqkv: Tensor | None, wo: Tensor):
        super().__init__()
        self.cfg = cfg
        self.wqkv = frozen(wqkv)  # [q + 2kv, hidden]
        self.bqkv = frozen(bqkv) if bqkv is not None else None  # [q + 2kv] (Qwen2)
        self.wo = frozen(wo)  # [hidden, q]

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        mask: Tensor | None,
        positions: Tensor,
        cache: KVCache | None,
        layer: int,
        plugs: Plugs | None,
    ) -> Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        qkv = F.linear(x, self.wqkv, self.bqkv)  # [b, t, q + 2kv]
        if plugs is not None:
            qkv = plugs.lora_delta(qkv, x, layer, "qkv")
        # rotate q and k heads in one go: [b, t, heads + kv_heads, hd]
        qk = apply_rope(qkv[..., : cfg.q_size + cfg.kv_size].view(b, t, -1, cfg.head_dim), *rope)
        q, k = qk.split([cfg.num_heads, cfg.num_kv_heads], dim=2)
        v = qkv[..., cfg.q_size + cfg.kv_size :].view(b, t, cfg.num_kv_heads, cfg.head_dim)
        if cache is None:
            keys, values = k.transpose(1, 2), v.transpose(1, 2)  # [b, kv_heads, t, hd]
        else:
            rows = torch.arange(b, device=x.device)[:, None]
            cache.k[layer][rows, :, positions] = k  # advanced index [b, t] → [b, t, kv_heads, hd]
            cache.v[layer][rows, :, positions] = v
            span = int(positions[0, -1]) + 1 if mask is None else mask.shape[-1]  # no mask: all rows level
            keys, values = cache.k[layer][:, :, :span], cache.v[layer][:, :, :span]
        if t == 1:
            out = decode_attention(q, keys, values, mask)
        else:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), keys, values, attn_mask=mask, enable_gqa=cfg.num_heads != cfg.num_kv_heads
            )  # [b, heads, t, hd]
            out = out.transpose(1, 2)
        out = out.reshape(b, t, cfg.q_size)
        y = F.linear(out, self.wo)
        return plugs.lora_delta(y, out, layer, "o") if plugs is not None else y


class MLP(nn.Module):
    def __init__(self, w13: Tensor, w2: Tensor):
        super().__init__()
        self.inter = w2.shape[1]
        self.w13 = frozen(w13)  # [2·inter, hidden]: gate | up
        self.w2 = frozen(w2)  # [hidden, inter]

    def forward(self, x: Tensor, layer: int, plugs: Plugs | None) -> Tensor:
        gate_up = F.linear(x, self.w13)  # [b, t, 2·inter]
        if plugs is not None:
            gate_up = plugs.lora_delta(gate_up, x, layer, "gate_up")
        gate, up = gate_up.split(self.inter, dim=-1)
        act = F.silu(gate) * up
        y = F.linear(act, self.w2)
        return plugs.lora_delta(y, act, layer, "down") if plugs is not None else y


class RMSNorm(nn.Module):
    def __init__(self, weight: Tensor, eps: float):
        super().__init__()
        self.weight = frozen(weight)  # [hidden]
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # normalise in fp32 like the reference implementation, then scale in the model dtype
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, w: dict[str, Tensor]):
        super().__init__()
        self.layer = layer
        self.attn_norm = RMSNorm(w["attn_norm"], cfg.rms_norm_eps)
        self.attn = Attention(cfg, w["wqkv"], w.get("bqkv"), w["wo"])
        self.mlp_norm = RMSNorm(w["mlp_norm"], cfg.rms_norm_eps)
        self.mlp = MLP(w["w13"], w["w2"])

    def forward(self, h, rope, mask, positions, cache, plugs) -> Tensor:
        h = h + self.attn(self.attn_norm(h), rope, mask, positions, cache, self.layer, plugs)
        h = h + self.mlp(self.mlp_norm(h), self.layer, plugs)
        return plugs.steer(h, self.layer) if plugs is not None else h


class Transformer(nn.Module):
    def __init__(
        self, cfg: ModelConfig, embed: Tensor, layers: list[dict[str, Tensor]], norm: Tensor, lm_head: Tensor
    ):
        super().__init__()
        self.cfg = cfg
        self.embed = frozen(embed)  # [vocab, hidden]
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, w) for i, w in enumerate(layers))
        self.norm = RMSNorm(norm, cfg.rms_norm_eps)
        self.lm_head = frozen(lm_head)  # [vocab, hidden]; the embedding itself when tied
        self.inv_freq: Tensor  # [hd/2]
        self.register_buffer("inv_freq", rope_inv_freq(cfg).to(embed.device), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.dtype

    def forward(
        self,
        tokens: Tensor,
        positions: Tensor,
        cache: KVCache | None = None,
        plugs: Plugs | None = None,
        logits_at: Tensor | None = None,
        hidden_out: list[Tensor] | None = None,
    ) -> Tensor:
        """tokens, positions: [b, t]. Returns logits [b, t, vocab] in fp32, or only at the per-row
        indices `logits_at`: [b] → [b, vocab] (generation needs only each row's last real token);
        [b, k] → [b, k, vocab] (a forge or eval needs only the answer's positions, and a full
        [b, t, vocab] of a long prompt is gigabytes).

        With a cache, the t new tokens of row i sit at positions[i] and attend to every cached
        position ≤ their own; padding tokens (beyond a row's real length) are written to the cache
        but never read by real tokens, and are overwritten when the row grows.
        `hidden_out`, when given, receives each decoder layer's output [b, t, hidden] (the residual
        stream that steering vectors are added to), for forging and measuring cards.
        """
        b = tokens.shape[0]
        h = F.embedding(tokens, self.embed)  # [b, t, hidden]
        angles = positions[..., None].float() * self.inv_freq  # [b, t, hd/2]
        angles = torch.cat((angles, angles), dim=-1)[:, :, None, :]  # [b, t, 1, hd]
        rope = (angles.cos().to(h.dtype), angles.sin().to(h.dtype))
        mask = self._mask(positions, cache)
        for layer in self.layers:
            h = layer(h, rope, mask, positions, cache, plugs)
            if hidden_out is not None:
                hidden_out.append(h)
        if logits_at is not None:
            rows = torch.arange(b, device=h.device)
            h = h[rows if logits_at.dim() == 1 else rows[:, None], logits_at]  # [b, hidden] or [b, k, hidden]
        return F.linear(self.norm(h), self.lm_head).float()

    def _mask(self, positions: Tensor, cache: KVCache | None) -> Tensor | None:
        """[b, 1, t, keys] bool: a query at position p sees keys at positions ≤ p.
        None when no mask is needed (one decode token per row, all rows at the same position)."""
        b, t = positions.shape
        if cache is None:
            keys = positions  # attend within the given tokens only
        else:
            span = int(positions.max()) + 1
            if t == 1 and bool((positions == span - 1).all()):
                return None
            keys = torch.arange(span, device=positions.device).expand(b, span)
        return (keys[:, None, :] <= positions[:, :, None])[:, None]

    @classmethod
    def from_state_dict(
        cls, cfg: ModelConfig, sd: dict[str, Tensor], dtype: torch.dtype = torch.float32, device="cpu"
    ) -> Transformer:
        """Build from Hugging Face parameter names, fusing q|k|v and gate|up. Weights are frozen."""

        def get(name: str) -> Tensor:
            if name not in sd:
                raise ConfigError(f"the weights lack {name!r}: the files do not match their config")
            return sd[name].to(device=device, dtype=dtype)

        layers = []
        for i in range(cfg.num_layers):
            p = f"model.layers.{i}."
            w = {
                "attn_norm": get(p + "input_layernorm.weight"),
                "mlp_norm": get(p + "post_attention_layernorm.weight"),
                "wqkv": torch.cat([get(p + f"self_attn.{n}_proj.weight") for n in "qkv"]),
                "wo": get(p + "self_attn.o_proj.weight"),
                "w13": torch.cat([get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")]),
                "w2": get(p + "mlp.down_proj.weight"),
            }
            if cfg.attention_bias:
                w["bqkv"] = torch.cat([get(p + f"self_attn.{n}_proj.bias") for n in "qkv"])
            layers.append(w)
        embed = get("model.embed_tokens.weight")
        lm_head = embed if cfg.tie_word_embeddings else get("lm_head.weight")
        return cls(cfg, embed, layers, get("model.norm.weight"), lm_head).eval()


def frozen(t: Tensor) -> nn.Parameter:
    """Base weights never train: adapters live in the socket bank."""
    return nn.Parameter(t, requires_grad=False)
