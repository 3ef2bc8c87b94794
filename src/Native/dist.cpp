// torch.distributed's c10d from the bridge: a TCPStore rendezvous and a Gloo process group (CPU), with the three
// collectives data-parallel training needs. Every call blocks until the collective finished or the group's timeout
// passed (then it fails with a message naming the operation, the rank and the timeout).
#include "errors.h"
#include "mlnx.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>

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
    *out = new Group{store, pg, rank, size, timeout};
  }
  MLNX_CATCH(context)
}

MLNX_API void mlnx_dist_free(void* group) { delete static_cast<Group*>(group); }

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
