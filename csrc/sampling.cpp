// Random point subsets (paper §4: 512 random trajectories per clip and step) and query sampling
// (paper §3 "Trajectory extraction"). Twins: traction.ops.reference.sample_subset, sample_queries.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "ops.h"
#include "parallel.h"
#include "rng.h"

namespace traction {

void sample_subset(const int64_t* num_valid, int64_t b, int64_t k, uint64_t seed, int64_t* index,
                   bool* mask) {
  parallel_for(b, 1, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<double, int64_t>> keys;  // (key, point index): ties go by index
    for (int64_t s = begin; s < end; ++s) {
      const int64_t nv = num_valid[s];
      const RngStream key(seed, kSubset, static_cast<uint64_t>(s));
      keys.resize(static_cast<size_t>(nv));
      for (int64_t i = 0; i < nv; ++i) keys[i] = {key.uniform(static_cast<uint64_t>(i)), i};
      const int64_t take = std::min(nv, k);
      // (key, index) pairs are all distinct, so any selection algorithm gives the same order.
      if (take < nv) std::nth_element(keys.begin(), keys.begin() + take, keys.end());
      std::sort(keys.begin(), keys.begin() + take);
      for (int64_t j = 0; j < k; ++j) {
        index[s * k + j] = j < take ? keys[j].second : 0;
        mask[s * k + j] = j < take;
      }
    }
  });
}

void sample_queries(int64_t n, int64_t t, int64_t height, int64_t width, uint64_t seed, float* out) {
  std::vector<int64_t> frame(static_cast<size_t>(n));
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  const RngStream ut(seed, kQueryT, 0), ux(seed, kQueryX, 0), uy(seed, kQueryY, 0);
  parallel_for(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const uint64_t c = static_cast<uint64_t>(p);
      const double ft = std::floor(ut.uniform(c) * static_cast<double>(t));
      frame[p] = std::min(static_cast<int64_t>(ft), t - 1);
      x[p] = static_cast<float>(ux.uniform(c) * static_cast<double>(width - 1));
      y[p] = static_cast<float>(uy.uniform(c) * static_cast<double>(height - 1));
    }
  });
  // Stable counting sort by frame: O(N + T) and the same order as a stable argsort.
  std::vector<int64_t> start(static_cast<size_t>(t) + 1, 0);
  for (int64_t p = 0; p < n; ++p) ++start[frame[p] + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  for (int64_t p = 0; p < n; ++p) {
    float* q = out + 3 * start[frame[p]]++;
    q[0] = static_cast<float>(frame[p]);
    q[1] = x[p];
    q[2] = y[p];
  }
}

}  // namespace traction
