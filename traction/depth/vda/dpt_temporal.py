"""DPT depth head with temporal motion modules (Video Depth Anything, Sec. 3.2).

Four ViT feature maps are projected and resampled to strides 4, 8, 16 and 32 of the patch grid,
fused coarse-to-fine by RefineNet-style blocks, and decoded to one channel at 14 x the patch grid.
Motion modules mix information across frames on the two coarsest feature maps and after the two
coarsest fusion steps.

Attribute names follow the official state-dict keys (``head.*``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dinov2 import PATCH
from .motion import MotionModule


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.conv1 = nn.Conv2d(C, C, 3, padding=1)
        self.conv2 = nn.Conv2d(C, C, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """(coarser path [+ lateral skip]) -> residual unit -> upsample to ``size`` -> 1x1 conv."""

    def __init__(self, C: int):
        super().__init__()
        self.out_conv = nn.Conv2d(C, C, 1)
        self.resConfUnit1 = ResidualConvUnit(C)     # refines the lateral skip (unused in refinenet4)
        self.resConfUnit2 = ResidualConvUnit(C)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        size = size if size is not None else (2 * x.shape[-2], 2 * x.shape[-1])
        return self.out_conv(_upsample(x, size))


class Scratch(nn.Module):
    """Lateral 3x3 convs to a common width, the four fusion blocks and the output convs."""

    def __init__(self, widths: tuple[int, ...], C: int):
        super().__init__()
        self.layer1_rn = nn.Conv2d(widths[0], C, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(widths[1], C, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(widths[2], C, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(widths[3], C, 3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(C)
        self.refinenet2 = FusionBlock(C)
        self.refinenet3 = FusionBlock(C)
        self.refinenet4 = FusionBlock(C)
        self.output_conv1 = nn.Conv2d(C, C // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(C // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU())


class DPTHeadTemporal(nn.Module):
    def __init__(self, in_dim: int, features: int, widths: tuple[int, ...], kind: str = "sdpa"):
        super().__init__()
        self.projects = nn.ModuleList([nn.Conv2d(in_dim, c, 1) for c in widths])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(widths[0], widths[0], 4, stride=4),          # patch grid x4
            nn.ConvTranspose2d(widths[1], widths[1], 2, stride=2),          # x2
            nn.Identity(),                                                  # x1
            nn.Conv2d(widths[3], widths[3], 3, stride=2, padding=1),        # /2
        ])
        self.scratch = Scratch(widths, features)
        self.motion_modules = nn.ModuleList([
            MotionModule(widths[2], kind), MotionModule(widths[3], kind),
            MotionModule(features, kind), MotionModule(features, kind)])

    def set_attention(self, kind: str) -> None:
        for mm in self.motion_modules:
            for blk in mm.temporal_transformer.transformer_blocks:
                for attn in blk.attention_blocks:
                    attn.kind = kind

    def forward(self, feats: list[torch.Tensor], h: int, w: int, T: int, chunk: int = 0) -> torch.Tensor:
        """feats: 4 x (B*T, h*w, C_vit) -> (B*T, 1, 14h, 14w) non-negative depth.

        ``chunk`` > 0 runs the two finest fusion steps and the output convs ``chunk`` frames at a time
        (they are per-frame and dominate activation memory); the result does not depend on it.
        """
        layers = []
        for x, project, resize in zip(feats, self.projects, self.resize_layers):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], h, w)    # (B*T, C_vit, h, w)
            layers.append(resize(project(x)))
        l1, l2, l3, l4 = layers
        mm, s = self.motion_modules, self.scratch
        l3 = mm[0](l3, T)
        l4 = mm[1](l4, T)
        r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
        path = mm[2](s.refinenet4(r4, size=r3.shape[-2:]), T)
        path = mm[3](s.refinenet3(path, r3, size=r2.shape[-2:]), T)
        step = chunk if chunk > 0 else path.shape[0]
        out = [self._decode(path[i:i + step], r2[i:i + step], r1[i:i + step], h, w)
               for i in range(0, path.shape[0], step)]
        return torch.cat(out) if len(out) > 1 else out[0]

    def _decode(self, path, r2, r1, h, w):
        s = self.scratch
        path = s.refinenet2(path, r2, size=r1.shape[-2:])
        path = s.refinenet1(path, r1)                                       # x2 upsample
        out = _upsample(s.output_conv1(path), (h * PATCH, w * PATCH))       # (b, C/2, 14h, 14w)
        # the last convs run in float32 even under autocast, as in the reference implementation
        with torch.autocast(device_type=out.device.type, enabled=False):
            out = s.output_conv2(out.float())
        return out
