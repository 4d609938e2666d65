// Linear resampling in time, respecting visibility (paper §5.3 frame counts, appendix E
// "all frames then interpolate to 32"). Twin: traction.ops.reference.resample.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"

namespace traction {

void resample(const float* x, const float* vis, int64_t n, int64_t t_in, int64_t c, int64_t t_out,
              float* x_out, float* vis_out) {
  // Left neighbour i_j and weight w_j of p_j = j (T_in-1)/(T_out-1), shared by all points.
  std::vector<int64_t> left(static_cast<size_t>(t_out));
  std::vector<double> weight(static_cast<size_t>(t_out));
  for (int64_t j = 0; j < t_out; ++j) {
    const double p = t_out > 1 ? static_cast<double>(j) * static_cast<double>(t_in - 1) /
                                     static_cast<double>(t_out - 1)
                               : 0.0;
    int64_t i = static_cast<int64_t>(std::floor(p));
    double w = p - static_cast<double>(i);
    if (i >= t_in - 1) i = t_in - 1, w = 0.0;  // the last frame has no right neighbour
    left[j] = i;
    weight[j] = w;
  }
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, t_out * (c + 1)));
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* xp = x + p * t_in * c;      // (T_in, C)
      const float* vp = vis + p * t_in;        // (T_in,)
      float* xo = x_out + p * t_out * c;       // (T_out, C)
      float* vo = vis_out + p * t_out;         // (T_out,)
      for (int64_t j = 0; j < t_out; ++j) {
        const int64_t i = left[j];
        const double w = weight[j];
        if (w == 0.0) {
          for (int64_t ch = 0; ch < c; ++ch) xo[j * c + ch] = xp[i * c + ch];
          vo[j] = vp[i];
        } else {
          for (int64_t ch = 0; ch < c; ++ch) {
            const double a = xp[i * c + ch], b = xp[(i + 1) * c + ch];
            xo[j * c + ch] = static_cast<float>((1.0 - w) * a + w * b);
          }
          // An interpolated sample is only as visible as its less visible neighbour.
          vo[j] = std::min(vp[i], vp[i + 1]);
        }
      }
    }
  });
}

}  // namespace traction
