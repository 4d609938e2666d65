// Per-sample normalization into the model input (paper §3 "Model architecture").
// Twin: traction.ops.reference.normalize.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "parallel.h"

namespace traction {

namespace {

struct SampleStats {
  double inv_scale = 1.0;  // 1 / max(H, W): a multiply instead of a divide (within 1 ulp of x / m)
  double xy_std = 0.0;  // std of normalized x and y, pooled
  double d_mean = 0.0, d_std = 0.0;
  bool any_valid = false;
};

// Statistics of one sample over its valid points' visible entries (all valid entries if none is
// visible), two-pass like the twin. The first pass sums both selections at once.
SampleStats sample_stats(const float* raw, const bool* valid, int64_t n, int64_t t, double h,
                         double w) {
  SampleStats st;
  st.inv_scale = 1.0 / std::max(h, w);
  double sum_xy[2] = {0.0, 0.0}, sum_d[2] = {0.0, 0.0};  // [visible only, all entries]
  int64_t count[2] = {0, 0};
  for (int64_t p = 0; p < n; ++p) {
    if (valid && !valid[p]) continue;
    for (int64_t f = 0; f < t; ++f) {
      const float* e = raw + (p * t + f) * 4;
      const double xy = (static_cast<double>(e[0]) + static_cast<double>(e[1])) * st.inv_scale;
      const double vis = e[3] >= kVisible ? 1.0 : 0.0;
      sum_xy[0] += vis * xy;
      sum_d[0] += vis * e[2];
      count[0] += e[3] >= kVisible;
      sum_xy[1] += xy;
      sum_d[1] += e[2];
      ++count[1];
    }
  }
  st.any_valid = count[1] > 0;
  if (!st.any_valid) return st;
  const int sel = count[0] > 0 ? 0 : 1;
  const double cnt = static_cast<double>(count[sel]);
  const double mean_xy = sum_xy[sel] / (2.0 * cnt), mean_d = sum_d[sel] / cnt;
  double ss_xy = 0.0, ss_d = 0.0;
  for (int64_t p = 0; p < n; ++p) {
    if (valid && !valid[p]) continue;
    for (int64_t f = 0; f < t; ++f) {
      const float* e = raw + (p * t + f) * 4;
      const double weight = (sel == 1 || e[3] >= kVisible) ? 1.0 : 0.0;
      const double dx = static_cast<double>(e[0]) * st.inv_scale - mean_xy;
      const double dy = static_cast<double>(e[1]) * st.inv_scale - mean_xy;
      const double dd = e[2] - mean_d;
      ss_xy += weight * (dx * dx + dy * dy);
      ss_d += weight * (dd * dd);
    }
  }
  st.xy_std = std::sqrt(ss_xy / (2.0 * cnt));
  st.d_mean = mean_d;
  st.d_std = std::sqrt(ss_d / cnt);
  return st;
}

}  // namespace

void normalize(const float* raw, const float* hw, const bool* valid, int64_t b, int64_t n, int64_t t,
               bool has_depth, float* out) {
  std::vector<SampleStats> stats(static_cast<size_t>(b));
  parallel_for(b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s)
      stats[s] = sample_stats(raw + s * n * t * 4, valid ? valid + s * n : nullptr, n, t,
                              hw[s * 2], hw[s * 2 + 1]);
  });
  // Second pass over every (sample, point), so a single large sample also uses all threads.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, t * 4));
  parallel_for(b * n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t bp = begin; bp < end; ++bp) {
      const SampleStats& st = stats[bp / n];
      const float* src = raw + bp * t * 4;  // (T, 4)
      float* dst = out + bp * t * 4;        // (T, 4)
      if (valid && !valid[bp]) {
        std::fill(dst, dst + t * 4, 0.0f);  // padding stays zeros
        continue;
      }
      const bool use_depth = has_depth && st.d_std >= 1e-8;
      const double depth_gain = use_depth ? st.xy_std / st.d_std : 0.0;
      for (int64_t f = 0; f < t; ++f) {
        const float* e = src + f * 4;
        float* o = dst + f * 4;
        o[0] = static_cast<float>(static_cast<double>(e[0]) * st.inv_scale);
        o[1] = static_cast<float>(static_cast<double>(e[1]) * st.inv_scale);
        o[2] = use_depth ? static_cast<float>((e[2] - st.d_mean) * depth_gain) : 0.0f;
        o[3] = e[3];
      }
    }
  });
}

}  // namespace traction
