// Tensor services, autograd and runtime settings: what the dispatcher's boxed calls cannot express.
#include "errors.h"
#include "mlnx.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

namespace mlnx {

std::string describe_tensor(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  std::string dtype = c10::toString(t.scalar_type());
  // torch's own spelling: float32, int64, ... (c10 prints Float, Long, ...)
  switch (t.scalar_type()) {
    case at::kFloat: dtype = "float32"; break;
    case at::kDouble: dtype = "float64"; break;
    case at::kHalf: dtype = "float16"; break;
    case at::kBFloat16: dtype = "bfloat16"; break;
    case at::kLong: dtype = "int64"; break;
    case at::kInt: dtype = "int32"; break;
    case at::kShort: dtype = "int16"; break;
    case at::kChar: dtype = "int8"; break;
    case at::kByte: dtype = "uint8"; break;
    case at::kBool: dtype = "bool"; break;
    default: break;
  }
  s << dtype << '[';
  auto sizes = t.sizes();
  for (size_t k = 0; k < sizes.size(); ++k) s << (k ? ", " : "") << sizes[k];
  s << "] " << t.device();
  return s.str();
}

}  // namespace mlnx

namespace {
at::Tensor& T(void* h) { return *static_cast<at::Tensor*>(h); }
}  // namespace

MLNX_API void mlnx_free(void* p) { std::free(p); }

// ---- Runtime ----

MLNX_API char* mlnx_init(void) {
  MLNX_TRY {
    // glibc returns every large tensor to the kernel (mmap/munmap), so each training step pays the page faults
    // again: 20-25% of a step in our benchmark. Serving all blocks from the heap (which is reused, so RSS stays
    // flat) made steps 6-15% faster for ~250 MB more peak RSS. MLNETEXT_MALLOC_TUNE=0 keeps glibc's defaults.
    const char* tune = std::getenv("MLNETEXT_MALLOC_TUNE");
    if (!tune || std::strcmp(tune, "0") != 0) {
      mallopt(M_MMAP_MAX, 0);
      mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
      mallopt(M_TOP_PAD, 16 * 1024 * 1024);
    }
  }
  MLNX_CATCH("init")
}

MLNX_API char* mlnx_version(char** out) {
  MLNX_TRY { *out = mlnx::dup_string(TORCH_VERSION); }
  MLNX_CATCH("version")
}

MLNX_API char* mlnx_config(char** out) {
  MLNX_TRY { *out = mlnx::dup_string(at::show_config()); }
  MLNX_CATCH("config")
}

MLNX_API void mlnx_set_num_threads(int32_t n) { at::set_num_threads(n); }
MLNX_API int32_t mlnx_get_num_threads(void) { return at::get_num_threads(); }

MLNX_API char* mlnx_manual_seed(uint64_t seed) {
  MLNX_TRY { at::manual_seed(seed); }  // seeds the CPU generator and, when present, every CUDA one
  MLNX_CATCH("manual_seed")
}

// Mixed precision: turns autocast on or off for one device type (0 CPU, 1 CUDA) with the given reduced dtype
// (a c10::ScalarType code, e.g. 15 = bfloat16). Autocast is thread-local state that the dispatcher consults on
// every call, so ops through the one generic door are cast like Python's torch.autocast. `entering` is 1 when a
// region starts and 0 when one ends (restoring the previous state); leaving the outermost region clears the
// cast-weight cache, as torch.autocast.__exit__ does.
MLNX_API char* mlnx_set_autocast(int32_t device_type, int32_t enabled, int32_t dtype, int32_t entering) {
  MLNX_TRY {
    auto type = static_cast<at::ScalarType>(dtype);
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR > 2
    auto dev = device_type == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(dev, enabled != 0);
    at::autocast::set_autocast_dtype(dev, type);
#else
    if (device_type == 1) {
      at::autocast::set_enabled(enabled != 0);
      at::autocast::set_autocast_gpu_dtype(type);
    } else {
      at::autocast::set_cpu_enabled(enabled != 0);
      at::autocast::set_autocast_cpu_dtype(type);
    }
#endif
    if (entering != 0) at::autocast::increment_nesting();
    else if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  }
  MLNX_CATCH("set_autocast")
}

MLNX_API int32_t mlnx_cuda_is_available(void) {
  try {
    return at::detail::getCUDAHooks().hasCUDA() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

MLNX_API int32_t mlnx_cuda_device_count(void) {
  try {
    return at::detail::getCUDAHooks().getNumGPUs();
  } catch (...) {
    return 0;
  }
}

MLNX_API void mlnx_set_cudnn_benchmark(int32_t enabled) { at::globalContext().setBenchmarkCuDNN(enabled != 0); }

MLNX_API int32_t mlnx_get_cudnn_benchmark(void) { return at::globalContext().benchmarkCuDNN() ? 1 : 0; }

// ---- Tensors ----

MLNX_API void mlnx_tensor_free(void* t) { delete static_cast<at::Tensor*>(t); }

MLNX_API char* mlnx_tensor_from_data(const void* data, const int64_t* sizes, int32_t ndim, int32_t dtype,
                                     int32_t device_type, int32_t device_index, void** out) {
  MLNX_TRY {
    auto options = at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype));
    at::Tensor t = at::empty(at::IntArrayRef(sizes, ndim), options);
    if (t.numel() > 0) std::memcpy(t.data_ptr(), data, t.numel() * t.element_size());
    c10::Device device(static_cast<c10::DeviceType>(device_type), static_cast<c10::DeviceIndex>(device_index));
    if (!device.is_cpu()) t = t.to(device);
    *out = new at::Tensor(std::move(t));
  }
  MLNX_CATCH("tensor from data")
}

MLNX_API char* mlnx_tensor_copy_to(void* h, void* dest, int64_t nbytes) {
  MLNX_TRY {
    at::Tensor t = T(h).detach().to(at::kCPU).contiguous();
    int64_t have = t.numel() * static_cast<int64_t>(t.element_size());
    if (have != nbytes) {
      throw std::invalid_argument("destination holds " + std::to_string(nbytes) + " bytes but tensor " +
                                  mlnx::describe_tensor(t) + " has " + std::to_string(have));
    }
    if (have > 0) std::memcpy(dest, t.data_ptr(), have);
  }
  MLNX_CATCH("copy tensor to buffer")
}

MLNX_API char* mlnx_tensor_meta_get(void* h, mlnx_tensor_meta* m) {
  MLNX_TRY {
    const at::Tensor& t = T(h);
    m->ndim = static_cast<int32_t>(t.dim());
    m->dtype = static_cast<int32_t>(t.scalar_type());
    m->device_type = static_cast<int32_t>(t.device().type());
    m->device_index = t.device().index();
    m->requires_grad = t.requires_grad();
    m->is_leaf = t.is_leaf();
    m->is_contiguous = t.is_contiguous();
    m->reserved = 0;
    m->numel = t.numel();
    m->data_ptr = t.device().is_cpu() && t.has_storage() ? t.data_ptr() : nullptr;
  }
  MLNX_CATCH("tensor metadata")
}

MLNX_API char* mlnx_tensor_shape(void* h, int64_t* sizes, int64_t* strides, int32_t cap) {
  MLNX_TRY {
    const at::Tensor& t = T(h);
    int32_t n = std::min<int32_t>(cap, static_cast<int32_t>(t.dim()));
    for (int32_t k = 0; k < n; ++k) {
      if (sizes) sizes[k] = t.size(k);
      if (strides) strides[k] = t.stride(k);
    }
  }
  MLNX_CATCH("tensor shape")
}

MLNX_API char* mlnx_tensor_alias(void* h, void** out) {
  MLNX_TRY { *out = new at::Tensor(T(h)); }
  MLNX_CATCH("alias tensor")
}

MLNX_API char* mlnx_tensor_set_data(void* h, void* src) {
  MLNX_TRY { T(h).set_data(T(src)); }
  MLNX_CATCH("set tensor data")
}

// ---- Autograd ----

MLNX_API char* mlnx_backward(void* const* tensors, void* const* grads, int32_t n, int32_t retain_graph,
                             int32_t create_graph) {
  MLNX_TRY {
    std::vector<at::Tensor> outputs, grad_outputs;
    for (int32_t k = 0; k < n; ++k) {
      outputs.push_back(T(tensors[k]));
      grad_outputs.push_back(grads && grads[k] ? T(grads[k]) : at::Tensor());
    }
    torch::autograd::backward(outputs, grad_outputs, c10::optional<bool>(retain_graph != 0), create_graph != 0);
  }
  MLNX_CATCH("backward")
}

MLNX_API char* mlnx_tensor_grad(void* h, void** out) {
  MLNX_TRY {
    const at::Tensor& g = T(h).grad();
    *out = g.defined() ? new at::Tensor(g) : nullptr;
  }
  MLNX_CATCH("grad")
}

MLNX_API char* mlnx_tensor_set_grad(void* h, void* grad) {
  MLNX_TRY { T(h).mutable_grad() = grad ? T(grad) : at::Tensor(); }
  MLNX_CATCH("set grad")
}

MLNX_API char* mlnx_tensor_set_requires_grad(void* h, int32_t requires_grad) {
  MLNX_TRY { T(h).set_requires_grad(requires_grad != 0); }
  MLNX_CATCH("requires_grad_")
}

MLNX_API int32_t mlnx_grad_mode_set(int32_t enabled) {
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(enabled != 0);
  return previous ? 1 : 0;
}

MLNX_API int32_t mlnx_grad_mode_get(void) { return c10::GradMode::is_enabled() ? 1 : 0; }

MLNX_API char* mlnx_inference_mode_enter(void** guard) {
  MLNX_TRY { *guard = new c10::InferenceMode(true); }
  MLNX_CATCH("inference mode")
}

MLNX_API void mlnx_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }
