// Splitting a loop over the outer axis across std::threads.
//
// Threads are started per call rather than kept in a global pool: a persistent pool does not
// survive fork() (PyTorch DataLoader workers fork), and a start costs tens of microseconds,
// small next to the work we hand out (small inputs run inline on the caller's thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <system_error>
#include <thread>
#include <vector>

namespace traction {

// TRACTION_NUM_THREADS if set to a positive integer, else the hardware concurrency. Read on every
// call so a process can change it at run time.
inline int64_t num_threads() {
  if (const char* env = std::getenv("TRACTION_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) return v;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int64_t>(hw) : 1;
}

// Calls fn(begin, end) on disjoint chunks covering [0, n). `grain` is the smallest chunk worth a
// thread of its own. Each output element is written by exactly one chunk, and nothing depends on
// the chunking, so results are identical for every thread count.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  const int64_t by_work = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int64_t workers = std::min({num_threads(), by_work, n});
  if (workers <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  const int64_t chunk = (n + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t begin = w * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    try {
      pool.emplace_back([&fn, begin, end] { fn(begin, end); });
    } catch (const std::system_error&) {
      fn(begin, end);  // no thread to be had: do this chunk here
    }
  }
  fn(int64_t{0}, std::min(n, chunk));  // the calling thread takes the first chunk
  for (auto& th : pool) th.join();
}

}  // namespace traction
