// The one door to libtorch: find an operator schema once, box arguments onto a stack, callBoxed.
// Kept free of <ATen/ATen.h> so it compiles quickly; everything typed lives in tensor.cpp.
#include "errors.h"
#include "mlnx.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>

namespace {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string display;  // "aten::add.Tensor"
};

std::mutex g_ops_mutex;
std::unordered_map<std::string, std::unique_ptr<OpEntry>> g_ops;

c10::TypePtr unwrap_optional(const c10::TypePtr& t) {
  if (t->kind() == c10::TypeKind::OptionalType) return t->expectRef<c10::OptionalType>().getElementType();
  return t;
}

bool is_float_type(const c10::TypePtr& t) { return unwrap_optional(t)->kind() == c10::TypeKind::FloatType; }

bool is_float_list_type(const c10::TypePtr& t) {
  auto u = unwrap_optional(t);
  return u->kind() == c10::TypeKind::ListType &&
         u->expectRef<c10::ListType>().getElementType()->kind() == c10::TypeKind::FloatType;
}

c10::IValue default_for(const c10::Argument& arg, const std::string& op) {
  if (arg.default_value()) return *arg.default_value();
  if (arg.type()->kind() == c10::TypeKind::OptionalType) return c10::IValue();
  throw std::invalid_argument("missing required argument '" + arg.name() + "' of type " + arg.type()->str() +
                              " for " + op);
}

c10::IValue to_ivalue(const mlnx_value& v, const c10::Argument& arg, const std::string& op) {
  switch (v.kind) {
    case MLNX_NONE:
      return c10::IValue();
    case MLNX_DEFAULT:
      return default_for(arg, op);
    case MLNX_TENSOR:
      if (!v.p) return c10::IValue();
      return c10::IValue(*static_cast<at::Tensor*>(v.p));
    case MLNX_INT:
      if (is_float_type(arg.type())) return c10::IValue(static_cast<double>(v.i));
      return c10::IValue(v.i);
    case MLNX_DOUBLE:
      return c10::IValue(v.d);
    case MLNX_BOOL:
      return c10::IValue(v.i != 0);
    case MLNX_INT_LIST: {
      const auto* data = static_cast<const int64_t*>(v.p);
      if (is_float_list_type(arg.type())) return c10::IValue(std::vector<double>(data, data + v.n));
      return c10::IValue(std::vector<int64_t>(data, data + v.n));
    }
    case MLNX_DOUBLE_LIST: {
      const auto* data = static_cast<const double*>(v.p);
      return c10::IValue(std::vector<double>(data, data + v.n));
    }
    case MLNX_BOOL_LIST: {
      const auto* data = static_cast<const uint8_t*>(v.p);
      c10::List<bool> list;
      list.reserve(v.n);
      for (int64_t k = 0; k < v.n; ++k) list.push_back(data[k] != 0);
      return c10::IValue(std::move(list));
    }
    case MLNX_STRING:
      return c10::IValue(std::string(static_cast<const char*>(v.p), static_cast<size_t>(v.n)));
    case MLNX_DEVICE:
      return c10::IValue(c10::Device(static_cast<c10::DeviceType>(v.i), static_cast<c10::DeviceIndex>(v.aux)));
    case MLNX_TENSOR_LIST: {
      auto* const* handles = static_cast<void* const*>(v.p);
      c10::List<at::Tensor> list;
      list.reserve(v.n);
      for (int64_t k = 0; k < v.n; ++k) list.push_back(*static_cast<at::Tensor*>(handles[k]));
      return c10::IValue(std::move(list));
    }
    case MLNX_OPT_TENSOR_LIST: {
      auto* const* handles = static_cast<void* const*>(v.p);
      c10::List<c10::optional<at::Tensor>> list;
      list.reserve(v.n);
      for (int64_t k = 0; k < v.n; ++k) {
        if (handles[k])
          list.push_back(*static_cast<at::Tensor*>(handles[k]));
        else
          list.push_back(c10::optional<at::Tensor>());
      }
      return c10::IValue(std::move(list));
    }
    default:
      throw std::invalid_argument("argument '" + arg.name() + "' of " + op + " has unknown value kind " +
                                  std::to_string(v.kind));
  }
}

void from_ivalue(c10::IValue&& iv, mlnx_value& out, const std::string& op) {
  std::memset(&out, 0, sizeof(out));
  if (iv.isTensor()) {
    at::Tensor t = std::move(iv).toTensor();
    if (t.defined()) {
      out.kind = MLNX_TENSOR;
      out.p = new at::Tensor(std::move(t));
    } else {
      out.kind = MLNX_NONE;
    }
  } else if (iv.isNone()) {
    out.kind = MLNX_NONE;
  } else if (iv.isInt()) {
    out.kind = MLNX_INT;
    out.i = iv.toInt();
  } else if (iv.isDouble()) {
    out.kind = MLNX_DOUBLE;
    out.d = iv.toDouble();
  } else if (iv.isBool()) {
    out.kind = MLNX_BOOL;
    out.i = iv.toBool() ? 1 : 0;
  } else if (iv.isTensorList()) {
    auto list = std::move(iv).toTensorList();
    auto** handles = static_cast<void**>(std::malloc(sizeof(void*) * (list.size() ? list.size() : 1)));
    for (size_t k = 0; k < list.size(); ++k) handles[k] = new at::Tensor(list.get(k));
    out.kind = MLNX_TENSOR_LIST;
    out.p = handles;
    out.n = static_cast<int64_t>(list.size());
  } else if (iv.isIntList()) {
    auto list = iv.toIntVector();
    auto* data = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (list.size() ? list.size() : 1)));
    std::copy(list.begin(), list.end(), data);
    out.kind = MLNX_INT_LIST;
    out.p = data;
    out.n = static_cast<int64_t>(list.size());
  } else {
    throw std::invalid_argument(op + " returned a value of unsupported type " + iv.tagKind());
  }
}

// "self=float32[2, 3] cpu, other=float32[4] cpu, alpha=1": the context every op error carries.
std::string describe_args(const c10::FunctionSchema& schema, const mlnx_value* args, int32_t nargs) {
  std::ostringstream s;
  const auto& formal = schema.arguments();
  for (int32_t k = 0; k < nargs && k < static_cast<int32_t>(formal.size()); ++k) {
    if (k) s << ", ";
    s << formal[k].name() << '=';
    const auto& v = args[k];
    switch (v.kind) {
      case MLNX_TENSOR:
        if (v.p)
          s << mlnx::describe_tensor(*static_cast<at::Tensor*>(v.p));
        else
          s << "None";
        break;
      case MLNX_INT: s << v.i; break;
      case MLNX_DOUBLE: s << v.d; break;
      case MLNX_BOOL: s << (v.i ? "True" : "False"); break;
      case MLNX_DEVICE: s << c10::Device(static_cast<c10::DeviceType>(v.i), static_cast<c10::DeviceIndex>(v.aux)); break;
      case MLNX_NONE: s << "None"; break;
      case MLNX_DEFAULT: s << "<default>"; break;
      case MLNX_INT_LIST: {
        s << '[';
        for (int64_t j = 0; j < v.n; ++j) s << (j ? ", " : "") << static_cast<const int64_t*>(v.p)[j];
        s << ']';
        break;
      }
      case MLNX_STRING: s << '\'' << std::string(static_cast<const char*>(v.p), v.n) << '\''; break;
      case MLNX_TENSOR_LIST:
      case MLNX_OPT_TENSOR_LIST: {
        s << '[';
        for (int64_t j = 0; j < v.n; ++j) {
          auto* h = static_cast<void* const*>(v.p)[j];
          s << (j ? ", " : "") << (h ? mlnx::describe_tensor(*static_cast<at::Tensor*>(h)) : std::string("None"));
        }
        s << ']';
        break;
      }
      default: s << "<kind " << v.kind << '>'; break;
    }
  }
  return s.str();
}

// libtorch's "Could not run 'op' with arguments from the 'X' backend" lists every kernel registration after a
// blank line (90 lines); keep the sentence that matters and say what to do about a missing CUDA backend.
std::string tidy(const char* what) {
  std::string msg(what);
  if (msg.find("Could not run '") == std::string::npos) return msg;
  auto cut = msg.find("\n\n");
  if (cut != std::string::npos) msg.resize(cut);
  if (msg.find("from the 'CUDA' backend") != std::string::npos && !at::detail::getCUDAHooks().hasCUDA())
    msg += " This libtorch has no CUDA support: build the bridge against a CUDA-enabled libtorch (src/Native/README.md).";
  return msg;
}

}  // namespace

MLNX_API char* mlnx_op_find(const char* name, const char* overload, void** op) {
  MLNX_TRY {
    std::string key = std::string(name) + "." + overload;
    std::lock_guard<std::mutex> lock(g_ops_mutex);
    auto it = g_ops.find(key);
    if (it == g_ops.end()) {
      auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
      if (!handle) {
        throw std::invalid_argument(std::string("no operator '") + name + "' with overload '" + overload +
                                    "' is registered in this libtorch");
      }
      auto entry = std::make_unique<OpEntry>(OpEntry{*handle, overload[0] ? key : std::string(name)});
      it = g_ops.emplace(key, std::move(entry)).first;
    }
    *op = it->second.get();
  }
  MLNX_CATCH(std::string("finding ") + name + (overload[0] ? "." : "") + overload)
}

MLNX_API char* mlnx_op_schema(void* op, char** out) {
  MLNX_TRY {
    std::ostringstream s;
    s << static_cast<OpEntry*>(op)->handle.schema();
    *out = mlnx::dup_string(s.str());
  }
  MLNX_CATCH("schema")
}

MLNX_API char* mlnx_op_call(void* op, const mlnx_value* args, int32_t nargs, mlnx_value* results,
                            int32_t max_results, int32_t* nresults) {
  auto* entry = static_cast<OpEntry*>(op);
  try {
    const auto& schema = entry->handle.schema();
    const auto& formal = schema.arguments();
    if (nargs > static_cast<int32_t>(formal.size())) {
      throw std::invalid_argument(std::to_string(nargs) + " arguments given but the schema takes " +
                                  std::to_string(formal.size()));
    }
    torch::jit::Stack stack;
    stack.reserve(formal.size());
    for (int32_t k = 0; k < nargs; ++k) stack.emplace_back(to_ivalue(args[k], formal[k], entry->display));
    for (size_t k = nargs; k < formal.size(); ++k) stack.emplace_back(default_for(formal[k], entry->display));

    entry->handle.callBoxed(&stack);

    int32_t count = static_cast<int32_t>(stack.size());
    if (nresults) *nresults = count;
    if (max_results > 0) {
      if (count > max_results) {
        throw std::invalid_argument(std::to_string(count) + " results returned but room for only " +
                                    std::to_string(max_results));
      }
      for (int32_t k = 0; k < count; ++k) from_ivalue(std::move(stack[k]), results[k], entry->display);
    }
    return nullptr;
  } catch (const c10::Error& e) {
    return mlnx::dup_string(entry->display + ": " + tidy(e.what_without_backtrace()) + " (arguments: " +
                            describe_args(entry->handle.schema(), args, nargs) + ")");
  } catch (const std::exception& e) {
    return mlnx::dup_string(entry->display + ": " + e.what() + " (arguments: " +
                            describe_args(entry->handle.schema(), args, nargs) + ")");
  } catch (...) {
    return mlnx::dup_string(entry->display + ": unknown native exception");
  }
}
