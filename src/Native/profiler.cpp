// Operator profile of the calling thread: libtorch's own (legacy) profiler records every operator the dispatcher runs,
// forward and backward, with CPU timestamps; mlnx_profiler_stop folds the events into one line per operator name
// (calls, self microseconds, total microseconds), the same figures torch.autograd.profiler's key_averages gives a
// Python process, so both sides of a benchmark can be compared operator by operator.
#include "errors.h"
#include "mlnx.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <vector>

namespace {
namespace prof = torch::autograd::profiler;

struct Totals {
  int64_t calls = 0;
  double self_us = 0, total_us = 0;
};

struct Open {
  const prof::LegacyEvent* push;
  double child_us;
};

void fold(const std::vector<prof::LegacyEvent>& events, std::map<std::string, Totals>& totals) {
  // Ranges nest on one thread; a pop closes the innermost open range with its handle.
  std::vector<Open> open;
  for (const auto& e : events) {
    if (e.kind() == prof::EventKind::PushRange) {
      open.push_back({&e, 0.0});
    } else if (e.kind() == prof::EventKind::PopRange) {
      auto it = std::find_if(open.rbegin(), open.rend(), [&](const Open& o) { return o.push->handle() == e.handle(); });
      if (it == open.rend()) continue;  // opened before the profiler started
      double elapsed = it->push->cpuElapsedUs(e);
      auto& t = totals[it->push->name()];
      t.calls += 1;
      t.total_us += elapsed;
      t.self_us += elapsed - it->child_us;
      open.erase(std::next(it).base(), open.end());
      if (!open.empty()) open.back().child_us += elapsed;
    }
  }
}
}  // namespace

MLNX_API char* mlnx_profiler_start(void) {
  MLNX_TRY {
    prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
  }
  MLNX_CATCH("profiler_start")
}

MLNX_API char* mlnx_profiler_stop(char** report) {
  MLNX_TRY {
    auto lists = prof::disableProfilerLegacy();
    std::map<std::string, Totals> totals;
    for (const auto& list : lists) fold(list, totals);
    std::ostringstream out;
    out << "name\tcalls\tself_us\ttotal_us\n";
    for (const auto& [name, t] : totals) out << name << '\t' << t.calls << '\t' << t.self_us << '\t' << t.total_us << '\n';
    *report = mlnx::dup_string(out.str());
  }
  MLNX_CATCH("profiler_stop")
}
