// torch.distributed's c10d from the bridge: a TCPStore rendezvous and a Gloo process group (CPU), with the three
// collectives data-parallel training needs. Every call blocks until the collective finished or the group's timeout
// passed (then it fails with a message naming the operation, the rank and the timeout). A differentiable all-reduce
// (its backward all-reduces the gradient) lets synchronised BatchNorm compute statistics over every rank's batch.
#include "errors.h"
#include "mlnx.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

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

void all_reduce(const std::shared_ptr<Group>& g, at::Tensor& t, const char* what) {
  try {
    std::vector<at::Tensor> ts{t};
    finish(g.get(), g->pg->allreduce(ts));
  } catch (const c10::Error& e) {
    throw std::runtime_error(where(g.get(), what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(where(g.get(), what) + ": " + e.what());
  }
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
    auto store = c10::make_intrusive<c10d::TCPStore>(host, so);
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
