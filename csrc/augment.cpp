// Trajectory augmentations of paper appendix B over a whole batch: spatial crop with
// recentering, in-plane rotation, translation, temporal shift with padding, per-trajectory
// jitter. Twin: traction.ops.reference.augment (which documents the order and the streams).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "rng.h"

namespace traction {

namespace {

// What one sample draws; identical for all its points.
struct SampleDraws {
  bool crop = false, rotate = false, translate = false, shift = false;
  double crop_scale = 1.0, x0 = 0.0, y0 = 0.0, bw = 0.0, bh = 0.0;
  double cx = 0.0, cy = 0.0, cos_a = 1.0, sin_a = 0.0;
  double dx = 0.0, dy = 0.0;
  int64_t shift_by = 0;
};

SampleDraws draw_sample(const AugmentParams& p, uint64_t seed, uint64_t s, double h, double w) {
  auto u = [&](uint64_t stream) { return rng_uniform(seed, stream, s, 0); };
  SampleDraws d;
  const double m = std::max(h, w);
  const double wn = w / m, hn = h / m;  // the frame is [0, W/m] x [0, H/m]
  d.crop = u(kCropApply) < p.crop_prob;
  if (d.crop) {
    d.crop_scale = p.crop_min_scale + (1.0 - p.crop_min_scale) * u(kCropScale);
    d.bw = d.crop_scale * wn;
    d.bh = d.crop_scale * hn;
    d.x0 = u(kCropX0) * (wn - d.bw);
    d.y0 = u(kCropY0) * (hn - d.bh);
  }
  d.rotate = u(kRotateApply) < p.rotate_prob;
  if (d.rotate) {
    const double deg = (2.0 * u(kRotateAngle) - 1.0) * p.rotate_max_deg;
    const double rad = deg * kPi / 180.0;
    d.cos_a = std::cos(rad);
    d.sin_a = std::sin(rad);
    d.cx = 0.5 * wn;
    d.cy = 0.5 * hn;
  }
  d.translate = u(kTranslateApply) < p.translate_prob;
  if (d.translate) {
    d.dx = (2.0 * u(kTranslateDx) - 1.0) * p.translate_max;
    d.dy = (2.0 * u(kTranslateDy) - 1.0) * p.translate_max;
  }
  d.shift = u(kShiftApply) < p.shift_prob;
  if (d.shift) {
    const int64_t span = 2 * p.shift_max;
    d.shift_by = std::min(static_cast<int64_t>(std::floor(u(kShift) * static_cast<double>(span + 1))), span) -
                 p.shift_max;
  }
  return d;
}

}  // namespace

void augment(const float* x, const bool* valid, const float* hw, int64_t b, int64_t n, int64_t t,
             const AugmentParams& params, uint64_t seed, float* x_out, bool* valid_out) {
  std::vector<SampleDraws> draws(static_cast<size_t>(b));
  for (int64_t s = 0; s < b; ++s)
    draws[s] = draw_sample(params, seed, static_cast<uint64_t>(s), hw[2 * s], hw[2 * s + 1]);

  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, t));
  parallel_for(b * n, grain, [&](int64_t begin, int64_t end) {
    std::vector<double> buf(static_cast<size_t>(t * 4));  // one trajectory (T, 4) in float64
    std::vector<double> moved(static_cast<size_t>(t * 4));
    for (int64_t bp = begin; bp < end; ++bp) {
      const int64_t s = bp / n, point = bp % n;
      const float* src = x + bp * t * 4;  // (T, 4)
      float* dst = x_out + bp * t * 4;    // (T, 4)
      if (!valid[bp]) {  // padding is copied untouched
        std::copy(src, src + t * 4, dst);
        valid_out[bp] = false;
        continue;
      }
      const SampleDraws& d = draws[s];
      for (int64_t i = 0; i < t * 4; ++i) buf[i] = src[i];

      // a. spatial crop: samples outside the box turn invisible; a trajectory never visible
      //    inside it is dropped; the box is stretched to fill the frame.
      bool alive = true;
      if (d.crop) {
        alive = false;
        for (int64_t f = 0; f < t; ++f) {
          double* e = &buf[f * 4];
          const bool inside = e[0] >= d.x0 && e[0] <= d.x0 + d.bw && e[1] >= d.y0 && e[1] <= d.y0 + d.bh;
          alive = alive || (inside && e[3] >= kVisible);
          if (!inside) e[3] = 0.0;
          e[0] = (e[0] - d.x0) / d.crop_scale;
          e[1] = (e[1] - d.y0) / d.crop_scale;
        }
      }
      if (!alive) {
        std::fill(dst, dst + t * 4, 0.0f);
        valid_out[bp] = false;
        continue;
      }
      // b. rotation about the frame centre, c. translation
      for (int64_t f = 0; f < t; ++f) {
        double* e = &buf[f * 4];
        if (d.rotate) {
          const double rx = e[0] - d.cx, ry = e[1] - d.cy;
          e[0] = d.cx + (d.cos_a * rx - d.sin_a * ry);
          e[1] = d.cy + (d.sin_a * rx + d.cos_a * ry);
        }
        if (d.translate) {
          e[0] += d.dx;
          e[1] += d.dy;
        }
      }
      // d. temporal shift: out[f] = in[f - shift]; frames from outside repeat the edge, invisible
      const double* cur = buf.data();
      if (d.shift) {
        for (int64_t f = 0; f < t; ++f) {
          const int64_t from = f - d.shift_by;
          const int64_t clamped = std::min(std::max<int64_t>(from, 0), t - 1);
          for (int64_t ch = 0; ch < 4; ++ch) moved[f * 4 + ch] = buf[clamped * 4 + ch];
          if (from != clamped) moved[f * 4 + 3] = 0.0;
        }
        cur = moved.data();
      }
      // e. jitter, counters over (original point index, frame, channel)
      const RngStream noise(seed, kJitter, static_cast<uint64_t>(s));
      for (int64_t f = 0; f < t; ++f) {
        const double* e = cur + f * 4;
        float* o = dst + f * 4;
        double px = e[0], py = e[1];
        if (params.jitter_std > 0.0) {
          const uint64_t c = static_cast<uint64_t>((point * t + f) * 2);
          px += params.jitter_std * noise.normal(c);
          py += params.jitter_std * noise.normal(c + 1);
        }
        o[0] = static_cast<float>(px);
        o[1] = static_cast<float>(py);
        o[2] = static_cast<float>(e[2]);
        o[3] = static_cast<float>(e[3]);
      }
      valid_out[bp] = true;
    }
  });
}

}  // namespace traction
