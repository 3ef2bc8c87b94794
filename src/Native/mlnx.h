// MLNetExt native bridge: the C ABI between the managed engine and libtorch.
//
// Design: one generic boxed op call through the c10 dispatcher (mlnx_op_find + mlnx_op_call) instead of
// one export per op, plus the few tensor/autograd/runtime services the dispatcher cannot express.
//
// Conventions
//  * Every function that can fail returns NULL on success or a malloc'd UTF-8 error message that the
//    caller releases with mlnx_free. No C++ exception ever crosses this boundary.
//  * A tensor handle is an owning pointer to an at::Tensor (a reference to a TensorImpl); release it with
//    mlnx_tensor_free. Handles returned through out-parameters are new references.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
#define MLNX_EXTERN extern "C"
#else
#define MLNX_EXTERN
#endif
#define MLNX_API MLNX_EXTERN __attribute__((visibility("default")))

// Kinds of mlnx_value. Values are part of the ABI (mirrored in Interop/NativeValue.cs).
enum mlnx_kind {
  MLNX_NONE = 0,            // None (optional argument absent / None return)
  MLNX_TENSOR = 1,          // p = tensor handle (NULL means None)
  MLNX_INT = 2,             // i (also ScalarType, Layout, MemoryFormat and int Scalars)
  MLNX_DOUBLE = 3,          // d
  MLNX_BOOL = 4,            // i != 0
  MLNX_INT_LIST = 5,        // p = int64_t[n]
  MLNX_DOUBLE_LIST = 6,     // p = double[n]
  MLNX_BOOL_LIST = 7,       // p = uint8_t[n]
  MLNX_STRING = 8,          // p = UTF-8 bytes, n = byte length
  MLNX_DEVICE = 9,          // i = c10::DeviceType (0 cpu, 1 cuda), aux = index (-1 = current)
  MLNX_TENSOR_LIST = 10,    // p = handle[n]
  MLNX_OPT_TENSOR_LIST = 11,// p = handle[n], NULL entries are None
  MLNX_DEFAULT = 12,        // use the schema's default for this position
};

typedef struct mlnx_value {
  int32_t kind;
  int32_t aux;
  int64_t i;
  double d;
  void* p;
  int64_t n;
} mlnx_value;

typedef struct mlnx_tensor_meta {
  int32_t ndim;
  int32_t dtype;        // c10::ScalarType
  int32_t device_type;  // c10::DeviceType
  int32_t device_index;
  int32_t requires_grad;
  int32_t is_leaf;
  int32_t is_contiguous;
  int32_t reserved;
  int64_t numel;
  void* data_ptr;       // NULL unless on CPU
} mlnx_tensor_meta;

MLNX_API void mlnx_free(void* p);

// ---- Runtime ----
MLNX_API char* mlnx_init(void);
MLNX_API char* mlnx_version(char** out);        // "<torch version>"
MLNX_API char* mlnx_config(char** out);         // at::show_config()
MLNX_API void mlnx_set_num_threads(int32_t n);
MLNX_API int32_t mlnx_get_num_threads(void);
MLNX_API char* mlnx_manual_seed(uint64_t seed);
MLNX_API char* mlnx_set_autocast(int32_t device_type, int32_t enabled, int32_t dtype, int32_t entering);
MLNX_API int32_t mlnx_cuda_is_available(void);
MLNX_API int32_t mlnx_cuda_device_count(void);
// cuDNN's autotuner (torch.backends.cudnn.benchmark): times the algorithms for each new convolution shape once and
// keeps the fastest; no effect without CUDA.
MLNX_API void mlnx_set_cudnn_benchmark(int32_t enabled);
MLNX_API int32_t mlnx_get_cudnn_benchmark(void);
// Operator profile of the calling thread (libtorch's legacy profiler): start, then stop returns a malloc'd TSV,
// "name\tcalls\tself_us\ttotal_us" and one line per operator name.
MLNX_API char* mlnx_profiler_start(void);
MLNX_API char* mlnx_profiler_stop(char** report);

// ---- The dispatcher door ----
// Finds (and caches) an operator by qualified name ("aten::add") and overload ("Tensor" or "").
MLNX_API char* mlnx_op_find(const char* name, const char* overload, void** op);
MLNX_API char* mlnx_op_schema(void* op, char** out);
// Calls the operator with positional arguments in schema order. Trailing arguments not given (and
// MLNX_DEFAULT ones) take the schema default; optional ones without a default become None.
// Results: one mlnx_value per schema return. With max_results == 0 results are discarded (in-place ops).
// A MLNX_TENSOR_LIST result has p = malloc'd handle array (release with mlnx_free after taking handles).
MLNX_API char* mlnx_op_call(void* op, const mlnx_value* args, int32_t nargs, mlnx_value* results,
                            int32_t max_results, int32_t* nresults);

// ---- Tensors ----
MLNX_API void mlnx_tensor_free(void* t);
MLNX_API char* mlnx_tensor_from_data(const void* data, const int64_t* sizes, int32_t ndim, int32_t dtype,
                                     int32_t device_type, int32_t device_index, void** out);
MLNX_API char* mlnx_tensor_copy_to(void* t, void* dest, int64_t nbytes);
MLNX_API char* mlnx_tensor_meta_get(void* t, mlnx_tensor_meta* meta);
// Writes min(ndim, cap) sizes and strides.
MLNX_API char* mlnx_tensor_shape(void* t, int64_t* sizes, int64_t* strides, int32_t cap);
MLNX_API char* mlnx_tensor_alias(void* t, void** out);  // a second handle to the same tensor
MLNX_API char* mlnx_tensor_set_data(void* t, void* src);  // t.set_data(src) (Parameter.data = src)

// ---- Autograd ----
MLNX_API char* mlnx_backward(void* const* tensors, void* const* grads, int32_t n, int32_t retain_graph,
                             int32_t create_graph);
MLNX_API char* mlnx_tensor_grad(void* t, void** out);       // *out = NULL when no gradient
MLNX_API char* mlnx_tensor_set_grad(void* t, void* grad);   // grad NULL clears it
MLNX_API char* mlnx_tensor_set_requires_grad(void* t, int32_t requires_grad);
MLNX_API int32_t mlnx_grad_mode_set(int32_t enabled);       // returns the previous state
MLNX_API int32_t mlnx_grad_mode_get(void);
MLNX_API char* mlnx_inference_mode_enter(void** guard);
MLNX_API void mlnx_inference_mode_exit(void* guard);

// ---- Distributed (c10d: TCPStore rendezvous, Gloo process group) ----
// Rank 0 hosts the store at host:port; every rank blocks until all `size` ranks joined or timeout_ms passed.
// interface_name: the network interface Gloo binds to (NULL or "": this host's resolved address, else loopback).
MLNX_API char* mlnx_dist_init(const char* host, int32_t port, int32_t rank, int32_t size, int64_t timeout_ms,
                              const char* interface_name, void** group);
MLNX_API void mlnx_dist_free(void* group);
// In place on a contiguous CPU tensor; every rank passes a tensor of the same shape and dtype.
MLNX_API char* mlnx_dist_all_reduce_sum(void* group, void* tensor);
MLNX_API char* mlnx_dist_broadcast(void* group, void* tensor, int32_t root);
MLNX_API char* mlnx_dist_barrier(void* group);
