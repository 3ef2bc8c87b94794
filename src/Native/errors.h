// Error plumbing shared by the bridge's translation units: every export body runs inside
// MLNX_TRY { ... } MLNX_CATCH(context), which turns any C++ exception into a malloc'd message.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace mlnx {

inline char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

// "float32[2, 3] cpu": dtype named as torch names it, then the shape and device.
std::string describe_tensor(const at::Tensor& t);

}  // namespace mlnx

#define MLNX_TRY try
#define MLNX_CATCH(context)                                                          \
  catch (const c10::Error& e) {                                                      \
    return mlnx::dup_string(std::string(context) + ": " + e.what_without_backtrace()); \
  }                                                                                  \
  catch (const std::exception& e) {                                                  \
    return mlnx::dup_string(std::string(context) + ": " + e.what());                 \
  }                                                                                  \
  catch (...) {                                                                      \
    return mlnx::dup_string(std::string(context) + ": unknown native exception");    \
  }                                                                                  \
  return nullptr;
