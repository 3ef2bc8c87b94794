// torch.distributed's c10d from the bridge: a TCPStore rendezvous and a Gloo process group (CPU), with the three
// collectives data-parallel training needs. Every call blocks until the collective finished or the group's timeout
// passed (then it fails with a message naming the operation, the rank and the timeout). A differentiable all-reduce
// (its backward all-reduces the gradient) lets synchronised BatchNorm compute statistics over every rank's batch.
#include "errors.h"
#include "mlnx.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank;
  int size;
  std::chrono::milliseconds timeout;
};

std::string where(const Group* g, const char* what) {
  std::ostringstream os;
  os << what << " (rank " << g->rank << " of " << g->size << ", timeout " << g->timeout.count() / 1000.0 << " s)";
  return os.str();
}

void finish(const Group* g, c10::intrusive_ptr<c10d::Work> work) {
  // Gloo enforces the group's timeout inside the collective; wait() rethrows its error
  work->wait(g->timeout);
}

// Groups by handle, so that a backward pass run after the group was freed fails with a message instead of touching
// freed memory (the autograd graph can outlive the C# object that made it).
std::mutex groups_mutex;
std::unordered_map<const void*, std::shared_ptr<Group>> groups;

std::shared_ptr<Group> find_group(const void* handle) {
  std::lock_guard<std::mutex> lock(groups_mutex);
  auto it = groups.find(handle);
  if (it == groups.end()) throw std::runtime_error("the process group was closed");
  return it->second;
}

// Runs a collective step where no MLNX_CATCH names it (inside autograd, in the reducer): an error names the operation,
// the rank and the timeout.
template <class F>
void in_context(const Group* g, const char* what, F&& step) {
  try {
    step();
  } catch (const c10::Error& e) {
    throw std::runtime_error(where(g, what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(where(g, what) + ": " + e.what());
  }
}

void all_reduce(const std::shared_ptr<Group>& g, at::Tensor& t, const char* what) {
  in_context(g.get(), what, [&] {
    std::vector<at::Tensor> ts{t};
    finish(g.get(), g->pg->allreduce(ts));
  });
}

// y = sum over ranks of x; dL/dx = sum over ranks of dL/dy (each rank's loss depends on every rank's x through y)
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t handle) {
    ctx->saved_data["group"] = handle;
    auto y = x.contiguous().clone();
    all_reduce(find_group(reinterpret_cast<const void*>(handle)), y, "all-reduce");
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto g = grads[0].contiguous().clone();
    all_reduce(find_group(reinterpret_cast<const void*>(ctx->saved_data["group"].toInt())), g, "all-reduce of gradients (backward)");
    return {g, at::Tensor()};
  }
};

// PyTorch 2.4 and later ask for TCPStore's libuv backend by default, which a libtorch built without libuv (Debian's
// 2.x packages) refuses; the classic backend serves the same rendezvous there.
c10::intrusive_ptr<c10d::TCPStore> make_store(const std::string& host, c10d::TCPStoreOptions options) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, options);
  } catch (const std::exception& e) {
    if (!options.useLibUV || std::string(e.what()).find("libuv") == std::string::npos) throw;
    options.useLibUV = false;
  }
#endif
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

}  // namespace

MLNX_API char* mlnx_dist_init(const char* host, int32_t port, int32_t rank, int32_t size, int64_t timeout_ms,
                              const char* interface_name, void** out) {
  std::string context = std::string("joining the process group at ") + host + ":" + std::to_string(port) + " as rank " +
                        std::to_string(rank) + " of " + std::to_string(size);
  MLNX_TRY {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;  // rank 0 hosts the rendezvous, as torchrun's MASTER_ADDR/MASTER_PORT
    so.numWorkers = size;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto store = make_store(host, so);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(interface_name && *interface_name
                                   ? c10d::ProcessGroupGloo::createDeviceForInterface(interface_name)
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
    auto* g = new Group{store, pg, rank, size, timeout};
    std::lock_guard<std::mutex> lock(groups_mutex);
    groups[g].reset(g);
    *out = g;
  }
  MLNX_CATCH(context)
}

MLNX_API void mlnx_dist_free(void* group) {
  std::lock_guard<std::mutex> lock(groups_mutex);
  groups.erase(group);  // deleted now, or when a collective still running on it returns
}

MLNX_API char* mlnx_dist_all_reduce_sum_autograd(void* group, void* tensor, void** out) {
  MLNX_TRY {
    auto y = AllReduceSum::apply(*static_cast<at::Tensor*>(tensor), reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(std::move(y));
  }
  MLNX_CATCH("differentiable all-reduce")
}

MLNX_API char* mlnx_dist_all_reduce_sum(void* group, void* tensor) {
  auto* g = static_cast<Group*>(group);
  MLNX_TRY {
    std::vector<at::Tensor> ts{*static_cast<at::Tensor*>(tensor)};
    finish(g, g->pg->allreduce(ts));
  }
  MLNX_CATCH(where(g, "all-reduce"))
}

MLNX_API char* mlnx_dist_broadcast(void* group, void* tensor, int32_t root) {
  auto* g = static_cast<Group*>(group);
  MLNX_TRY {
    std::vector<at::Tensor> ts{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    finish(g, g->pg->broadcast(ts, o));
  }
  MLNX_CATCH(where(g, "broadcast"))
}

MLNX_API char* mlnx_dist_barrier(void* group) {
  auto* g = static_cast<Group*>(group);
  MLNX_TRY { finish(g, g->pg->barrier()); }
  MLNX_CATCH(where(g, "barrier"))
}

// ---- Gradient reducer: all-reduces gradient buckets while the backward pass is still running ----
//
// Each parameter gets a hook that runs when autograd has its gradient (before it is accumulated into .grad). When
// armed for a step, the hook writes (the gradient accumulated so far + this one) × the rank's share into its bucket's
// flat buffer; a bucket whose parameters are all written starts its all-reduce asynchronously (Gloo's own threads)
// while the backward goes on with earlier layers. Buckets start strictly in order, on every rank the same (Gloo pairs
// collectives by order), so a bucket that is ready waits for its predecessors. finish() writes what no hook wrote
// (parameters this step did not use), starts the rest, waits for all and copies the sums into .grad.
namespace {

struct Reducer {
  std::shared_ptr<Group> group;
  std::vector<at::Tensor> params;
  std::vector<unsigned> hooks;
  std::vector<std::vector<size_t>> buckets;       // parameter indices, in the order the backward reaches them
  std::vector<std::pair<size_t, int64_t>> slot_of; // parameter -> (bucket, offset in the bucket's buffer)
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<size_t> waiting;                      // per bucket: parameters not written yet
  std::vector<char> written;
  size_t next = 0;                                  // the next bucket to start
  bool armed = false;
  double share = 1;
  int64_t started_in_backward = 0;
  std::mutex mutex;

  void write(size_t k, const at::Tensor* incoming) {
    auto [b, offset] = slot_of[k];
    auto slot = flats[b].narrow(0, offset, params[k].numel()).view(params[k].sizes());
    const at::Tensor& held = params[k].grad();
    if (incoming && held.defined()) at::add_out(slot, held, *incoming);
    else if (incoming) slot.copy_(*incoming);
    else if (held.defined()) slot.copy_(held);
    else slot.zero_();
    if (share != 1) slot.mul_(share);
    written[k] = 1;
    --waiting[b];
  }

  void start_ready(bool in_backward) {
    while (next < buckets.size() && waiting[next] == 0) {
      std::vector<at::Tensor> ts{flats[next]};
      works[next] = group->pg->allreduce(ts);
      if (in_backward) ++started_in_backward;
      ++next;
    }
  }

  void on_gradient(size_t k, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed || written[k]) return;
    at::NoGradGuard no_grad;
    write(k, &grad);
    start_ready(true);
  }
};

}  // namespace

MLNX_API char* mlnx_dist_reducer_create(void* group, void* const* params, int32_t n, int64_t bucket_bytes, void** out) {
  MLNX_TRY {
    auto r = std::make_unique<Reducer>();
    r->group = find_group(group);
    for (int32_t k = 0; k < n; ++k) r->params.push_back(*static_cast<at::Tensor*>(params[k]));
    r->slot_of.resize(r->params.size());
    // the backward reaches the last layers first: buckets are filled from the last parameter backwards
    std::vector<size_t> bucket;
    int64_t bytes = 0;
    auto close = [&] {
      if (bucket.empty()) return;
      int64_t offset = 0;
      for (size_t k : bucket) {
        r->slot_of[k] = {r->buckets.size(), offset};
        offset += r->params[k].numel();
      }
      r->flats.push_back(at::empty({offset}, r->params[bucket[0]].options().requires_grad(false)));
      r->buckets.push_back(bucket);
      bucket.clear();
      bytes = 0;
    };
    for (int32_t k = n - 1; k >= 0; --k) {
      const auto& p = r->params[k];
      if (!bucket.empty() && p.scalar_type() != r->params[bucket[0]].scalar_type()) close();
      bucket.push_back(k);
      bytes += p.numel() * p.element_size();
      if (bytes >= bucket_bytes) close();
    }
    close();
    r->works.resize(r->buckets.size());
    r->waiting.resize(r->buckets.size());
    r->written.assign(r->params.size(), 0);
    Reducer* raw = r.get();
    for (size_t k = 0; k < r->params.size(); ++k)
      r->hooks.push_back(r->params[k].register_hook([raw, k](const at::Tensor& grad) { raw->on_gradient(k, grad); }));
    *out = r.release();
  }
  MLNX_CATCH("creating the gradient reducer")
}

// Before the backward of a step's last micro-batch: every gradient is scaled by share when it is reduced.
MLNX_API char* mlnx_dist_reducer_arm(void* reducer, double share) {
  auto* r = static_cast<Reducer*>(reducer);
  MLNX_TRY {
    std::lock_guard<std::mutex> lock(r->mutex);
    if (r->armed) throw std::runtime_error("the reducer is already armed (finish the previous step first)");
    for (size_t b = 0; b < r->buckets.size(); ++b) {
      r->waiting[b] = r->buckets[b].size();
      r->works[b].reset();
    }
    std::fill(r->written.begin(), r->written.end(), 0);
    r->next = 0;
    r->share = share;
    r->started_in_backward = 0;
    r->armed = true;
  }
  MLNX_CATCH("arming the gradient reducer")
}

// After that backward: reduce what is left, wait for every bucket, write the sums into .grad. Returns how many buckets
// started while the backward was running.
MLNX_API char* mlnx_dist_reducer_finish(void* reducer, int64_t* started_in_backward) {
  auto* r = static_cast<Reducer*>(reducer);
  MLNX_TRY {
    std::lock_guard<std::mutex> lock(r->mutex);
    if (!r->armed) throw std::runtime_error("the reducer was not armed for this step");
    r->armed = false;
    at::NoGradGuard no_grad;
    for (size_t k = 0; k < r->params.size(); ++k)
      if (!r->written[k]) r->write(k, nullptr);   // not used by this step's forward
    r->start_ready(false);
    for (size_t b = 0; b < r->buckets.size(); ++b) {
      in_context(r->group.get(), "all-reduce of gradients", [&] { finish(r->group.get(), r->works[b]); });
      for (size_t k : r->buckets[b]) {
        auto [_, offset] = r->slot_of[k];
        auto sum = r->flats[b].narrow(0, offset, r->params[k].numel()).view(r->params[k].sizes());
        auto& grad = r->params[k].mutable_grad();
        if (grad.defined()) grad.copy_(sum);
        else grad = sum.clone();
      }
    }
    *started_in_backward = r->started_in_backward;
  }
  MLNX_CATCH("reducing gradients")
}

MLNX_API void mlnx_dist_reducer_free(void* reducer) {
  auto* r = static_cast<Reducer*>(reducer);
  for (size_t k = 0; k < r->params.size(); ++k) r->params[k].remove_hook(r->hooks[k]);
  delete r;
}
