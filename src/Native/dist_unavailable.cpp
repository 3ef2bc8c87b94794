// Built instead of dist.cpp when the libtorch being built against ships without Gloo's headers (CMakeLists.txt
// checks): the same exports, each failing with what to do, so everything but data-parallel training still works.
#include "errors.h"
#include "mlnx.h"

namespace {

char* unavailable(const char* what) {
  return mlnx::dup_string(std::string(what) +
                          ": this build of the bridge has no data-parallel training, because the libtorch it was built "
                          "against came without Gloo's headers; install them (Debian: libgloo-dev) and rebuild the bridge");
}

}  // namespace

MLNX_API char* mlnx_dist_init(const char*, int32_t, int32_t, int32_t, int64_t, const char*, void** out) {
  *out = nullptr;
  return unavailable("joining the process group");
}
MLNX_API void mlnx_dist_free(void*) {}
MLNX_API char* mlnx_dist_all_reduce_sum_autograd(void*, void*, void**) { return unavailable("all_reduce"); }
MLNX_API char* mlnx_dist_all_reduce_sum(void*, void*) { return unavailable("all_reduce"); }
MLNX_API char* mlnx_dist_broadcast(void*, void*, int32_t) { return unavailable("broadcast"); }
MLNX_API char* mlnx_dist_barrier(void*) { return unavailable("barrier"); }
MLNX_API char* mlnx_dist_reducer_create(void*, void* const*, int32_t, int64_t, void**) { return unavailable("gradient reducer"); }
MLNX_API char* mlnx_dist_reducer_arm(void*, double) { return unavailable("gradient reducer"); }
MLNX_API char* mlnx_dist_reducer_finish(void*, int64_t*) { return unavailable("gradient reducer"); }
MLNX_API void mlnx_dist_reducer_free(void*) {}
