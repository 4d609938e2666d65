"""Masked-trajectory autoencoder (paper §3 "Self-supervised pretraining", appendix C/D).

Following MAE (He et al.), with trajectories as tokens:

- ``forward_encoder``: a random ``mask_ratio`` (0.9) of each clip's trajectory tokens is removed;
  the encoder (the same ``TrajectoryTransformer`` later fine-tuned) sees only the kept ones,
  with [CLS] and registers prepended.
- ``forward_decoder``: a bottleneck MLP maps the encoder width (288) to the decoder width (144);
  removed tokens are one shared learned embedding plus the positional encoding of their start
  position, and exist only here; 2 transformer layers with 4 heads; a prediction MLP outputs the
  (x, y) of every frame of every token.
- ``forward_loss``: mean absolute error between predicted and true normalized (x, y) over all
  frames of the removed (and not padded) trajectories.

Mask semantics: ``mask`` (B, N) float is 1 for a REMOVED token (to be reconstructed) and 0 for a
kept one, as in MAE. ``padding_mask`` (B, N) bool is True at padding (not a real trajectory).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from traction.config import MAEConfig, ModelConfig
from traction.model.encoding import start_position_encoding
from traction.model.transformer import Block, TrajectoryTransformer, key_padding_to_attn_mask


class TrajectoryMAE(nn.Module):
    def __init__(self, model_cfg: ModelConfig, mae_cfg: MAEConfig):
        super().__init__()
        self.mae_cfg = mae_cfg
        self.encoder = TrajectoryTransformer(model_cfg, num_classes=0)
        D, Dd = model_cfg.embed_dim, mae_cfg.decoder_dim
        self.bottleneck = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, Dd))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder_blocks = nn.ModuleList([Block(Dd, mae_cfg.decoder_heads, model_cfg.mlp_ratio)
                                             for _ in range(mae_cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(Dd)
        self.decoder_pred = nn.Sequential(nn.Linear(Dd, Dd), nn.GELU(),
                                          nn.Linear(Dd, model_cfg.num_frames * 2))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for m in [self.bottleneck, self.decoder_blocks, self.decoder_norm, self.decoder_pred]:
            for sub in m.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.trunc_normal_(sub.weight, std=0.02)
                    nn.init.zeros_(sub.bias)

    # ------------------------------------------------------------------ masking
    @staticmethod
    def random_masking(num_tokens: int, padding_mask: Optional[torch.Tensor], batch: int, mask_ratio: float,
                       device, generator: Optional[torch.Generator] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample random masking by sorting uniform noise (MAE).

        Returns ``ids_keep`` (B, K), ``ids_restore`` (B, N) and ``mask`` (B, N) with 1 = removed.
        Padding tokens get noise above every real token's, so they are removed first; K is set by
        the number of real tokens of the fullest clip.
        """
        noise = torch.rand(batch, num_tokens, device=device, generator=generator)  # (B, N)
        if padding_mask is not None:
            noise = noise + 2.0 * padding_mask.float()
            n_real = int((~padding_mask).sum(1).max().item())
        else:
            n_real = num_tokens
        len_keep = max(1, int(round(n_real * (1.0 - mask_ratio))))
        ids_shuffle = torch.argsort(noise, dim=1)                                   # (B, N) ascending
        ids_restore = torch.argsort(ids_shuffle, dim=1)                             # (B, N)
        ids_keep = ids_shuffle[:, :len_keep]                                        # (B, K)
        mask = torch.ones(batch, num_tokens, device=device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)                                   # (B, N) 1 = removed
        return ids_keep, ids_restore, mask

    # ------------------------------------------------------------------ the three stages
    def forward_encoder(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor], mask_ratio: float,
                        generator: Optional[torch.Generator] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """x (B, N, T, 4) -> latent (B, P+K, D) of the kept tokens, mask (B, N), ids_restore (B, N),
        and the padding mask of the kept tokens (B, K)."""
        enc = self.encoder
        B, N, T, C = x.shape
        ids_keep, ids_restore, mask = self.random_masking(N, padding_mask, B, mask_ratio, x.device, generator)
        # Tokenize only the kept trajectories: the removed ones never reach the encoder (90% less work).
        x_kept = torch.gather(x, 1, ids_keep[:, :, None, None].expand(-1, -1, T, C))  # (B, K, T, 4)
        kept = enc.embed_tokens(x_kept)                                              # (B, K, D)
        kept_pad = None if padding_mask is None else torch.gather(padding_mask, 1, ids_keep)  # (B, K)
        latent = enc.run_blocks(kept, kept_pad)                                     # (B, P+K, D)
        return latent, mask, ids_restore, kept_pad

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor, x: torch.Tensor,
                        padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """latent (B, P+K, D) -> predicted normalized (x, y) of every token: (B, N, T, 2)."""
        enc = self.encoder
        P = enc.num_prefix_tokens
        B, N, T = x.shape[:3]
        h = self.bottleneck(latent)                                                 # (B, P+K, Dd)
        Dd = h.shape[-1]
        K = h.shape[1] - P
        fill = self.mask_token.to(h.dtype).expand(B, N - K, Dd)                     # (B, N-K, Dd)
        seq = torch.cat([h[:, P:], fill], dim=1)                                    # (B, N, Dd) shuffled order
        seq = torch.gather(seq, 1, ids_restore[..., None].expand(-1, -1, Dd))       # (B, N, Dd) original order
        if enc.cfg.use_pos_enc:
            start = x[:, :, 0, :3]
            if not enc.cfg.use_depth:
                start = torch.cat([start[..., :2], torch.zeros_like(start[..., 2:])], dim=-1)
            seq = seq + start_position_encoding(start, Dd, scale=enc.cfg.pos_enc_scale).to(seq.dtype)
        seq = torch.cat([h[:, :P], seq], dim=1)                                     # (B, P+N, Dd)
        attn_mask = key_padding_to_attn_mask(padding_mask, P)
        for blk in self.decoder_blocks:
            seq = blk(seq, attn_mask)
        seq = self.decoder_norm(seq)
        pred = self.decoder_pred(seq[:, P:])                                        # (B, N, T*2)
        return pred.reshape(B, N, T, 2)                                             # (B, N, T, 2)

    @staticmethod
    def forward_loss(x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
                     padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """L1 over all frames of the removed, real trajectories, in normalized coordinates."""
        target = x[..., :2]                                                         # (B, N, T, 2)
        per_token = (pred.float() - target.float()).abs().mean(dim=(2, 3))          # (B, N)
        weight = mask if padding_mask is None else mask * (~padding_mask).float()   # (B, N)
        return (per_token * weight).sum() / weight.sum().clamp_min(1.0)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                mask_ratio: Optional[float] = None, generator: Optional[torch.Generator] = None
                ) -> Dict[str, torch.Tensor]:
        ratio = self.mae_cfg.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore, _ = self.forward_encoder(x, padding_mask, ratio, generator)
        pred = self.forward_decoder(latent, ids_restore, x, padding_mask)
        loss = self.forward_loss(x, pred, mask, padding_mask)
        return {"loss": loss, "pred": pred, "mask": mask}

    def encoder_state_dict(self) -> Dict[str, torch.Tensor]:
        """The weights transferred to fine-tuning (the decoder is discarded, paper §3)."""
        return {k: v for k, v in self.encoder.state_dict().items() if not k.startswith("head.")}
