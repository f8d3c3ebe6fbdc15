// A tiny fork-join thread pool for the fused kernels (the second core). Idle workers block on a
// condition variable, so they never compete with OpenBLAS's own threads between jobs. One caller
// at a time: a second concurrent caller (another worker_thread) runs its job serially.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mce {

class Pool {
 public:
  ~Pool() { resize(1); }

  /** Total threads including the caller (>= 1). */
  void resize(int n) {
    n = std::max(1, n);
    std::lock_guard<std::mutex> use(use_);
    if (n == size_) return;
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    size_ = n;
    // Workers start from the current generation: no job can start before resize returns.
    const uint64_t g = gen_;
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, g] { loop(i, g); });
  }

  int size() const { return size_; }

  /** Run f(tid) for every tid in [0, tasks); the caller runs tid 0. Serial if tasks > size(). */
  void run(int tasks, const std::function<void(int)>& f) {
    std::unique_lock<std::mutex> use(use_, std::try_to_lock);
    if (tasks <= 1 || tasks > size_ || !use.owns_lock()) {
      for (int t = 0; t < tasks; t++) f(t);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &f;
      tasks_ = tasks;
      remaining_.store(tasks - 1, std::memory_order_relaxed);
      gen_++;
    }
    cv_.notify_all();
    f(0);
    // The other chunks are about as long as ours: spin briefly, then yield.
    for (int spins = 0; remaining_.load(std::memory_order_acquire) != 0; spins++) {
      if (spins > 2000) std::this_thread::yield();
#if defined(__x86_64__) || defined(__i386__)
      else __builtin_ia32_pause();
#endif
    }
  }

 private:
  void loop(int id, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* job;
      int tasks;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        job = job_;
        tasks = tasks_;
      }
      if (id < tasks) {
        (*job)(id);
        remaining_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex use_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int tasks_ = 0;
  int size_ = 1;
  uint64_t gen_ = 0;
  bool stop_ = false;
  std::atomic<int> remaining_{0};
};

Pool& pool();

/** Split [0, n) into contiguous chunks of at least `grain` items over the pool: f(begin, end). */
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t maxTasks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  int tasks = (int)std::min<int64_t>(pool().size(), maxTasks);
  // Serial or not, the body runs through the same std::function, so the same machine code (and
  // the same vectorised summation order) computes every row whatever the thread count.
  std::function<void(int)> job = [&](int t) __attribute__((noinline)) {
    int64_t b = n * t / tasks, e = n * (t + 1) / tasks;
    if (b < e) f(b, e);
  };
  if (tasks <= 1) job(0);
  else pool().run(tasks, job);
}

/** Number of chunks parallel_for(n, grain, ...) would use (for per-chunk reduction buffers). */
inline int parallel_chunks(int64_t n, int64_t grain) {
  if (n <= 0) return 1;
  int64_t maxTasks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  return (int)std::min<int64_t>(pool().size(), maxTasks);
}

/** Split [0, n) into exactly `chunks` contiguous pieces: f(chunk, begin, end). Deterministic. */
template <class F>
inline void parallel_for_chunks(int64_t n, int chunks, F&& f) {
  chunks = std::max(1, chunks);
  std::function<void(int)> job = [&](int t) __attribute__((noinline)) { f(t, n * t / chunks, n * (t + 1) / chunks); };
  if (chunks <= 1) job(0);
  else pool().run(chunks, job);
}

}  // namespace mce
