// The trajectory core: kernels on raw C-contiguous buffers. Shapes are checked by the Python
// wrappers in traction/ops/__init__.py; the meaning of each function is its NumPy twin in
// traction/ops/reference.py. Axis letters: B batch, N points, T frames, C channels.
#pragma once

#include <cstdint>

namespace traction {

constexpr double kVisible = 0.5;  // v >= kVisible counts as visible

// x (N, T_in, C), vis (N, T_in) -> x_out (N, T_out, C), vis_out (N, T_out).
void resample(const float* x, const float* vis, int64_t n, int64_t t_in, int64_t c, int64_t t_out,
              float* x_out, float* vis_out);

// raw (B, N, T, 4), hw (B, 2), valid (B, N) or nullptr -> out (B, N, T, 4).
void normalize(const float* raw, const float* hw, const bool* valid, int64_t b, int64_t n, int64_t t,
               bool has_depth, float* out);

// num_valid (B,) -> index (B, k), mask (B, k).
void sample_subset(const int64_t* num_valid, int64_t b, int64_t k, uint64_t seed, int64_t* index,
                   bool* mask);

struct AugmentParams {
  double crop_prob, crop_min_scale, rotate_prob, rotate_max_deg, translate_prob, translate_max,
      shift_prob;
  int64_t shift_max;
  double jitter_std;
};

// x (B, N, T, 4), valid (B, N), hw (B, 2) -> x_out (B, N, T, 4), valid_out (B, N).
void augment(const float* x, const bool* valid, const float* hw, int64_t b, int64_t n, int64_t t,
             const AugmentParams& params, uint64_t seed, float* x_out, bool* valid_out);

// depth (T, Hd, Wd), xy (N, T, 2) video px -> out (N, T).
void lift_depth(const float* depth, const float* xy, int64_t t, int64_t hd, int64_t wd, int64_t n,
                double video_h, double video_w, float* out);

// -> out (N, 3) = (t, x, y), sorted by t (stable).
void sample_queries(int64_t n, int64_t t, int64_t height, int64_t width, uint64_t seed, float* out);

}  // namespace traction
