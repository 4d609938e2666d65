// Counter-based random numbers shared with the NumPy twin (traction/ops/rng.py).
//
// Every number is a pure function of (seed, stream, a, b): results are identical to NumPy's and
// do not depend on the number of threads. Streams are listed in traction/ops/reference.py.
#pragma once

#include <cmath>
#include <cstdint>

namespace traction {

constexpr double kPi = 3.14159265358979323846;  // the same double as numpy.pi

// One stream per random quantity; the table with counters is in traction/ops/reference.py.
enum Stream : uint64_t {
  kSubset = 1,
  kQueryT = 2, kQueryX = 3, kQueryY = 4,
  kCropApply = 10, kCropScale = 11, kCropX0 = 12, kCropY0 = 13,
  kRotateApply = 20, kRotateAngle = 21,
  kTranslateApply = 30, kTranslateDx = 31, kTranslateDy = 32,
  kShiftApply = 40, kShift = 41,
  kJitter = 50,
};

// splitmix64 finalizer; uint64 arithmetic wraps by definition.
inline uint64_t mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}

inline uint64_t rng_key(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  return mix(mix(mix(seed + 0x9E3779B97F4A7C15ULL * (stream + 1)) + a) + b);
}

// Uniform in [0, 1) with 53 random bits.
inline double rng_uniform(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  return static_cast<double>(rng_key(seed, stream, a, b) >> 11) * 0x1.0p-53;
}

// Standard normal by Box-Muller on the counters 2b and 2b+1.
inline double rng_normal(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  const double u1 = rng_uniform(seed, stream, a, 2 * b);
  const double u2 = rng_uniform(seed, stream, a, 2 * b + 1);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * kPi * u2);
}

// The counters (seed, stream, a) fixed: key(b) costs one mix instead of three. Same numbers as
// rng_uniform / rng_normal.
class RngStream {
 public:
  RngStream(uint64_t seed, uint64_t stream, uint64_t a)
      : base_(mix(mix(seed + 0x9E3779B97F4A7C15ULL * (stream + 1)) + a)) {}
  double uniform(uint64_t b) const { return static_cast<double>(mix(base_ + b) >> 11) * 0x1.0p-53; }
  double normal(uint64_t b) const {
    const double u1 = uniform(2 * b), u2 = uniform(2 * b + 1);
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * kPi * u2);
  }

 private:
  uint64_t base_;
};

}  // namespace traction
