"""The CoTracker3 network (Karaev et al., "CoTracker3: Simpler and Better Point Tracking by
Pseudo-Labelling Real Videos", 2024), written for traction.

Parameter and buffer names follow the official checkpoints (``scaled_offline.pth``,
``scaled_online.pth``) so they load with ``strict=True`` -- including the official spelling
``updateformer.virual_tracks``. Everything else is our own structure.

Pipeline of one call (paper §3):
  frames -> ``FeatureEncoder`` (stride 4, 128 ch, L2-normalised) -> 4-level average-pool pyramid
  queries -> support features: a 7x7 window of features around each query point, per level
  repeat ``iters`` times:
      4D correlation of the window around each current position with the support window
      (7^4 = 2401 values per level) -> ``corr_mlp`` -> 4 x 256 features
      + visibility / confidence logits + sinusoidal encoding of frame-to-frame motion (84)
      = 1110 features per point and frame, plus the learned time embedding ``time_emb``
      -> ``UpdateTransformer`` (time attention, and space attention through 64 virtual tracks)
      -> updates of position, visibility logit and confidence logit.

Axes: B batch, T frames, N points, C channels. Positions inside the network are in pixels of
the stride-4 feature map ("feature px"); outputs are in model pixels (x4).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from traction.errors import VideoError
from traction.tracking.cotracker3.corr_triton import correlation
from traction.tracking.cotracker3.sampling import sample_frames, window_offsets

# Settings fixed by the official checkpoints.
STRIDE = 4
LATENT_DIM = 128          # feature channels C
CORR_RADIUS = 3           # 7x7 windows
CORR_LEVELS = 4
HIDDEN = 384
HEADS = 8
NUM_VIRTUAL = 64
INPUT_DIM = 1110          # 2 (vis, conf) + 4*256 (correlation) + 84 (motion encoding)
MODEL_HW = (384, 512)     # the resolution the predictor resizes to (H, W)


# ----------------------------------------------------------------------------- feature encoder

class ResBlock(nn.Module):
    """Two 3x3 convs with instance norm; a strided 1x1 projection on the skip when downsampling."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.downsample = None
        if stride != 1:
            # Sequential so the checkpoint key is ``downsample.0``.
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride),
                                            nn.InstanceNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.instance_norm(self.conv1(x)), inplace=True)
        y = F.relu(F.instance_norm(self.conv2(y)), inplace=True)
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y, inplace=True)


class FeatureEncoder(nn.Module):
    """Per-frame CNN: (M, 3, H, W) in [-1, 1] -> (M, 128, H/4, W/4).

    Four residual stages at strides 2, 2, 4, 8, 16 of the input; each is resized to stride 4 and
    the concatenation is fused by two convs (a multi-scale feature map, paper §3.1).
    """

    def __init__(self, out_dim: int = LATENT_DIM):
        super().__init__()
        widths = [out_dim // 2, out_dim // 4 * 3, out_dim, out_dim]        # 64, 96, 128, 128
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        c_in = widths[0]
        for i, (w, s) in enumerate(zip(widths, [1, 2, 2, 2])):
            setattr(self, f"layer{i + 1}", nn.Sequential(ResBlock(c_in, w, s), ResBlock(w, w, 1)))
            c_in = w
        self.conv2 = nn.Conv2d(sum(widths), out_dim * 2, 3, padding=1)
        self.conv3 = nn.Conv2d(out_dim * 2, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        x = F.relu(F.instance_norm(self.conv1(x)), inplace=True)
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            stages.append(F.interpolate(x, (H // STRIDE, W // STRIDE), mode="bilinear",
                                        align_corners=True))
        x = F.relu(F.instance_norm(self.conv2(torch.cat(stages, dim=1))), inplace=True)
        return self.conv3(x)


# ----------------------------------------------------------------------------- transformer

class Mlp(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, tanh_gelu: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)
        self.gelu = "tanh" if tanh_gelu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.gelu))


class Attention(nn.Module):
    """Multi-head attention, 8 heads of 48; keys and values from one projection ``to_kv``."""

    def __init__(self, dim: int = HIDDEN, heads: int = HEADS):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        M, L, D = x.shape
        h = self.heads
        q = self.to_q(x).reshape(M, L, h, D // h).transpose(1, 2)         # (M, h, L, D/h)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k = k.reshape(M, -1, h, D // h).transpose(1, 2)                   # (M, h, Lc, D/h)
        v = v.reshape(M, -1, h, D // h).transpose(1, 2)                   # (M, h, Lc, D/h)
        out = F.scaled_dot_product_attention(q, k, v)                     # (M, h, L, D/h)
        return self.to_out(out.transpose(1, 2).reshape(M, L, D))          # (M, L, D)


class SelfAttnBlock(nn.Module):
    """Pre-norm transformer block (norms without affine parameters, as in the checkpoints)."""

    def __init__(self, dim: int = HIDDEN):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim, dim, tanh_gelu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Pre-norm cross-attention block; the context gets its own affine LayerNorm."""

    def __init__(self, dim: int = HIDDEN):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim, dim, tanh_gelu=True)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm1(x), self.norm_context(context))
        return x + self.mlp(self.norm2(x))


class UpdateTransformer(nn.Module):
    """Alternating time and space attention over point tokens (paper §3.2).

    Space attention is factorised through 64 learned virtual tracks: virtual tokens read from the
    points, attend among themselves, and the points read back from them, so the cost is linear
    in N. Output per token: (dx, dy, d vis logit, d conf logit).
    """

    def __init__(self, depth: int = 3, input_dim: int = INPUT_DIM, dim: int = HIDDEN,
                 num_virtual: int = NUM_VIRTUAL):
        super().__init__()
        self.num_virtual = num_virtual
        self.virual_tracks = nn.Parameter(torch.zeros(1, num_virtual, 1, dim))   # sic, as in the checkpoints
        self.input_transform = nn.Linear(input_dim, dim)
        self.flow_head = nn.Linear(dim, 2)
        self.vis_conf_head = nn.Linear(dim, 2)
        self.time_blocks = nn.ModuleList(SelfAttnBlock(dim) for _ in range(depth))
        self.space_virtual_blocks = nn.ModuleList(SelfAttnBlock(dim) for _ in range(depth))
        self.space_point2virtual_blocks = nn.ModuleList(CrossAttnBlock(dim) for _ in range(depth))
        self.space_virtual2point_blocks = nn.ModuleList(CrossAttnBlock(dim) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, T, input_dim) -> (B, N, T, 4)."""
        B, N, T, _ = x.shape
        tokens = self.input_transform(x)                                          # (B, N, T, D)
        virtual = self.virual_tracks.expand(B, -1, T, -1)                         # (B, V, T, D)
        tokens = torch.cat([tokens, virtual], dim=1)                              # (B, N+V, T, D)
        P = N + self.num_virtual
        D = tokens.shape[-1]
        for time_blk, v_from_p, v_self, p_from_v in zip(
                self.time_blocks, self.space_virtual2point_blocks,
                self.space_virtual_blocks, self.space_point2virtual_blocks):
            tokens = time_blk(tokens.reshape(B * P, T, D))                        # (B*P, T, D)
            space = tokens.reshape(B, P, T, D).transpose(1, 2).reshape(B * T, P, D)  # (B*T, P, D)
            points, virtual = space[:, :N], space[:, N:]
            virtual = v_self(v_from_p(virtual, points))
            points = p_from_v(points, virtual)
            space = torch.cat([points, virtual], dim=1)                           # (B*T, P, D)
            tokens = space.reshape(B, T, P, D).transpose(1, 2)                    # (B, P, T, D)
        tokens = tokens[:, :N]                                                    # (B, N, T, D)
        return torch.cat([self.flow_head(tokens), self.vis_conf_head(tokens)], dim=-1)


def motion_encoding(coords: torch.Tensor, num_bands: int = 10) -> torch.Tensor:
    """Sinusoidal encoding of the displacement to the previous and next frame (paper §3.1).

    coords (B, T, N, 2) feature px -> (B, T, N, 4 + 2*4*num_bands) = (..., 84).
    Displacements are divided by the feature-map size (128, 96); the missing neighbour at each
    end of the clip counts as zero displacement.
    """
    size = coords.new_tensor([MODEL_HW[1] / STRIDE, MODEL_HW[0] / STRIDE])
    to_next = F.pad(coords[:, :-1] - coords[:, 1:], (0, 0, 0, 0, 0, 1))       # (B, T, N, 2)
    to_prev = F.pad(coords[:, 1:] - coords[:, :-1], (0, 0, 0, 0, 1, 0))       # (B, T, N, 2)
    d = torch.cat([to_next / size, to_prev / size], dim=-1)                    # (B, T, N, 4)
    freqs = 2.0 ** torch.arange(num_bands, device=d.device, dtype=d.dtype)     # (F,)
    ang = (d[..., None, :] * freqs[:, None]).flatten(-2)                       # (B, T, N, F*4), band-major
    # sin(a + pi/2) = cos(a): one sin call over both halves, as the checkpoints were trained.
    enc = torch.sin(torch.cat([ang, ang + 0.5 * math.pi], dim=-1))             # (B, T, N, 8F)
    return torch.cat([d, enc], dim=-1)


# ----------------------------------------------------------------------------- the network

class CoTracker3(nn.Module):
    """CoTracker3 network. ``window_len`` is the length of the stored time embedding: 60 for the
    offline checkpoints (interpolated to the clip length), 16 for the online ones (one window)."""

    def __init__(self, window_len: int = 60):
        super().__init__()
        self.window_len = window_len
        # A persistent buffer, loaded from the checkpoint rather than recomputed: the network uses
        # exactly the table it was saved with (and strict loading accounts for the key).
        self.register_buffer("time_emb", torch.zeros(1, window_len, INPUT_DIM))
        self.fnet = FeatureEncoder(LATENT_DIM)
        self.updateformer = UpdateTransformer()
        self.corr_mlp = Mlp((2 * CORR_RADIUS + 1) ** 4, 384, 256)
        self.point_chunk = 4096     # points per correlation chunk: bounds memory, same result

    # --- features -------------------------------------------------------------------------

    def encode_frames(self, video: torch.Tensor, frame_chunk: int = 16) -> torch.Tensor:
        """video (B, T, 3, H, W) in 0..255 -> unit-norm features (B, T, C, H/4, W/4).

        Frames are encoded in chunks; every op is per frame, so chunking changes nothing but the
        peak memory.
        """
        B, T, _, H, W = video.shape
        if H % STRIDE or W % STRIDE or H < 32 or W < 32:
            raise VideoError(f"cotracker3 network input: frame size {H}x{W} must be multiples of 4, >= 32")
        frames = video.reshape(B * T, 3, H, W)                                 # (B*T, 3, H, W)
        out = [self.fnet(2.0 * (f / 255.0) - 1.0) for f in frames.split(frame_chunk)]
        # float32 from here on (as the reference): sampling positions need the precision.
        fmaps = torch.cat(out).float()                                         # (B*T, C, h, w)
        sq = fmaps.square().sum(dim=1, keepdim=True).clamp_min(1e-12)
        fmaps = fmaps * sq.rsqrt()
        return fmaps.reshape(B, T, *fmaps.shape[1:])

    @staticmethod
    def pyramid(fmaps: torch.Tensor) -> list[torch.Tensor]:
        """(B, T, C, h, w) -> CORR_LEVELS maps, each 2x average-pooled from the previous."""
        B, T, C = fmaps.shape[:3]
        levels = [fmaps]
        for _ in range(CORR_LEVELS - 1):
            x = F.avg_pool2d(levels[-1].flatten(0, 1), 2, stride=2)            # (B*T, C, h/2, w/2)
            levels.append(x.reshape(B, T, C, *x.shape[-2:]))
        return levels

    @staticmethod
    def support_features(levels: list[torch.Tensor], frames: torch.Tensor,
                         xy: torch.Tensor) -> list[torch.Tensor]:
        """Features in a 7x7 window around each query, on its query frame, per level.

        frames (B, N) frame index into ``levels``; xy (B, N, 2) feature px.
        Returns per level (B, N, 7, 7, C).
        """
        R = 2 * CORR_RADIUS + 1
        offs = window_offsets(CORR_RADIUS, xy.device, xy.dtype).reshape(1, 1, R * R, 2)
        out = []
        for i, fmap in enumerate(levels):
            pts = xy[:, :, None] / 2 ** i + offs                                 # (B, N, 49, 2)
            s = sample_frames(fmap, frames, pts)                                 # (B, N, 49, C)
            out.append(s.reshape(*s.shape[:2], R, R, s.shape[-1]))
        return out

    # --- iterative refinement -------------------------------------------------------------

    def time_embedding(self, T: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, T, D): the stored embedding, linearly resampled when T differs from its length."""
        if T == self.time_emb.shape[1]:
            return self.time_emb
        emb = F.interpolate(self.time_emb.float().transpose(1, 2), size=T, mode="linear")
        return emb.transpose(1, 2).to(dtype)                                     # (1, T, D)

    def correlation_features(self, levels, support, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, T, N, 2) feature px -> (B, T, N, CORR_LEVELS*256), chunked over N."""
        N = coords.shape[2]
        chunks = []
        for n0 in range(0, N, self.point_chunk):
            sl = slice(n0, n0 + self.point_chunk)
            per_level = []
            for i, (fmap, sup) in enumerate(zip(levels, support)):
                corr = correlation(fmap, coords[:, :, sl] / 2 ** i, sup[:, sl], CORR_RADIUS)
                per_level.append(self.corr_mlp(corr))                          # (B, T, n, 256)
            chunks.append(torch.cat(per_level, dim=-1))
        return torch.cat(chunks, dim=2)                                        # (B, T, N, 1024)

    def refine(self, levels, support, coords, vis, conf, iters: int):
        """The update loop shared by the offline and online models.

        coords (B, T, N, 2) feature px; vis, conf (B, T, N) logits. Returns the final coords
        (feature px), vis and conf logits.
        """
        T = coords.shape[1]
        for _ in range(iters):
            coords = coords.detach()
            corr = self.correlation_features(levels, support, coords)          # (B, T, N, 1024)
            x = torch.cat([vis[..., None], conf[..., None], corr.to(vis.dtype),
                           motion_encoding(coords)], dim=-1)                   # (B, T, N, 1110)
            x = x.transpose(1, 2)                                              # (B, N, T, 1110)
            x = x + self.time_embedding(T, x.dtype)[:, None]
            delta = self.updateformer(x).transpose(1, 2).float()               # (B, T, N, 4)
            coords = coords + delta[..., :2]
            vis = vis + delta[..., 2]
            conf = conf + delta[..., 3]
        return coords, vis, conf

    # --- offline model --------------------------------------------------------------------

    def forward(self, video: torch.Tensor, queries: torch.Tensor, iters: int = 4):
        """Offline tracking of a whole clip at once.

        video (B, T, 3, H, W) 0..255 at model resolution; queries (B, N, 3) (t, x, y) model px.
        Returns tracks (B, T, N, 2) model px, vis and conf probabilities (B, T, N).
        """
        return self.track_levels(self.pyramid(self.encode_frames(video)), queries, iters)

    def track_levels(self, levels: list[torch.Tensor], queries: torch.Tensor, iters: int = 4):
        """``forward`` from precomputed pyramid features (e.g. reused, time-reversed, for
        backward tracking: the encoder works per frame, so reversing its output is exact)."""
        B, T = levels[0].shape[:2]
        N = queries.shape[1]
        frames = queries[..., 0].long()                                        # (B, N)
        xy = queries[..., 1:3].float() / STRIDE                               # (B, N, 2) feature px
        support = self.support_features(levels, frames, xy)
        coords = xy[:, None].expand(B, T, N, 2)                                # start at the query
        zeros = xy.new_zeros(B, T, N)
        coords, vis, conf = self.refine(levels, support, coords, zeros, zeros, iters)
        return coords * STRIDE, torch.sigmoid(vis), torch.sigmoid(conf)

    # --- online model ---------------------------------------------------------------------

    def online_step(self, state: "OnlineState", chunk: torch.Tensor, queries: torch.Tensor,
                    iters: int = 4):
        """Track through one sliding window of the online model (paper §3.3).

        state: what earlier windows left (``OnlineState.new()`` for a new video); chunk
        (B, T_c, 3, H, W) 0..255, the frames state.start .. state.start + T_c - 1, T_c <= window;
        queries (B, N, 3) model px in video frame numbers. Returns tracks (B, T_seen, N, 2) model
        px and vis / conf probabilities (B, T_seen, N) for every frame seen so far; the window
        then moves on by half its length.
        """
        S = self.window_len
        step = S // 2
        B, Tc = chunk.shape[:2]
        N = queries.shape[1]
        assert Tc <= S, "online chunk longer than the window"
        ind = state.start
        # The window's first half was the previous window's second half: reuse those features
        # (the encoder works per frame, so this is exact) and encode only the new frames.
        n_old = 0
        if state.fmaps is not None:
            n_old = min(Tc, state.fmaps.shape[1])
        fmaps = state.fmaps[:, :n_old] if n_old else None
        if Tc > n_old:
            new = self.encode_frames(chunk[:, n_old:])                          # (B, Tc-n_old, C, h, w)
            fmaps = new if fmaps is None else torch.cat([fmaps, new], dim=1)    # (B, Tc, C, h, w)
        state.fmaps = fmaps[:, step:]       # frames ind+step .. : the next window's first half
        if Tc < S:   # pad with the last frame so the window always holds S frames
            fmaps = torch.cat([fmaps, fmaps[:, -1:].expand(-1, S - Tc, -1, -1, -1)], dim=1)
        levels = self.pyramid(fmaps)
        frames = queries[..., 0].long()                                        # (B, N)
        xy = queries[..., 1:3].float() / STRIDE                               # (B, N, 2)

        # Support features are taken once, in the first window whose new half holds the query frame.
        support = self.support_features(levels, frames - ind, xy)
        lo = 0 if ind == 0 else ind + step
        new = ((frames >= lo) & (frames < ind + S)).to(support[0].dtype)[:, :, None, None, None]
        if state.support is None:
            state.support = [torch.zeros_like(s) for s in support]
        state.support = [acc + s * new for acc, s in zip(state.support, support)]
        # Queries from later frames take part with zeroed support features.
        started = (frames < ind + S).to(support[0].dtype)[:, :, None, None, None]
        support = [s * started for s in state.support]

        # Grow the stored predictions by this chunk's new frames.
        T_total = Tc if state.coords is None else state.coords.shape[1] + min(step, Tc - step)
        coords_all = xy.new_zeros(B, T_total, N, 2)
        vis_all = xy.new_zeros(B, T_total, N)
        conf_all = xy.new_zeros(B, T_total, N)
        if state.coords is not None:
            T_old = state.coords.shape[1]
            coords_all[:, :T_old] = state.coords
            vis_all[:, :T_old] = state.vis
            conf_all[:, :T_old] = state.conf

        coords = xy[:, None].expand(B, S, N, 2)
        vis = xy.new_zeros(B, S, N)
        conf = xy.new_zeros(B, S, N)
        if ind > 0:
            # Tracks already running continue from the previous window's overlap (its second
            # half), held constant over the new half.
            overlap = S - step
            carry = (frames < ind + overlap)[:, None]                          # (B, 1, N)

            def prev(x):
                x = x[:, ind:ind + overlap]
                return torch.cat([x, x[:, -1:].expand(-1, step, *x.shape[2:])], dim=1)
            coords = torch.where(carry[..., None], prev(coords_all) / STRIDE, coords)
            vis = torch.where(carry, prev(vis_all), vis)
            conf = torch.where(carry, prev(conf_all), conf)

        coords, vis, conf = self.refine(levels, support, coords, vis, conf, iters)
        coords_all[:, ind:ind + S] = coords[:, :Tc] * STRIDE
        vis_all[:, ind:ind + S] = vis[:, :Tc]
        conf_all[:, ind:ind + S] = conf[:, :Tc]
        state.coords, state.vis, state.conf = coords_all, vis_all, conf_all
        state.start = ind + step
        return coords_all, torch.sigmoid(vis_all), torch.sigmoid(conf_all)


class OnlineState:
    """What the online model carries between windows: features of the frames shared with the
    next window, accumulated support features, and the tracks (model px) and vis / conf logits
    of every frame seen so far."""

    def __init__(self):
        self.start = 0
        self.fmaps: torch.Tensor | None = None   # features of the frames start .. start+S/2-1
        self.support: list[torch.Tensor] | None = None
        self.coords: torch.Tensor | None = None
        self.vis: torch.Tensor | None = None
        self.conf: torch.Tensor | None = None

    @classmethod
    def new(cls) -> "OnlineState":
        return cls()
