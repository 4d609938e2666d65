// Bilinear depth at each trajectory point: 2D -> 2.5D (paper §3, design.md "lift").
// Twin: traction.ops.reference.lift_depth.
#include <algorithm>
#include <cmath>

#include "ops.h"
#include "parallel.h"

namespace traction {

void lift_depth(const float* depth, const float* xy, int64_t t, int64_t hd, int64_t wd, int64_t n,
                double video_h, double video_w, float* out) {
  const double wd_f = static_cast<double>(wd), hd_f = static_cast<double>(hd);
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, t));
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t f = 0; f < t; ++f) {
        const float* pt = xy + (p * t + f) * 2;
        // Pixel centres at integer coordinates in both grids; outside points take the border.
        const double xd = std::min(std::max((pt[0] + 0.5) * wd_f / video_w - 0.5, 0.0), wd_f - 1.0);
        const double yd = std::min(std::max((pt[1] + 0.5) * hd_f / video_h - 0.5, 0.0), hd_f - 1.0);
        const int64_t x0 = static_cast<int64_t>(std::floor(xd));
        const int64_t y0 = static_cast<int64_t>(std::floor(yd));
        const int64_t x1 = std::min(x0 + 1, wd - 1), y1 = std::min(y0 + 1, hd - 1);
        const double wx = xd - static_cast<double>(x0), wy = yd - static_cast<double>(y0);
        const float* map = depth + f * hd * wd;  // (Hd, Wd)
        const double top = (1.0 - wx) * map[y0 * wd + x0] + wx * map[y0 * wd + x1];
        const double bottom = (1.0 - wx) * map[y1 * wd + x0] + wx * map[y1 * wd + x1];
        out[p * t + f] = static_cast<float>((1.0 - wy) * top + wy * bottom);
      }
    }
  });
}

}  // namespace traction
