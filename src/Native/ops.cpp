// Operators of the bridge's own, registered with the c10 dispatcher under the `mlnetext` namespace, so that C# calls
// them through the same generic door as aten's (mlnx_op_find / mlnx_op_call) and the ONNX exporter records each call
// as one node. They are compositions of aten operators (a catch-all kernel, i.e. CompositeImplicitAutograd), so
// autograd, devices and dtypes work through the aten calls inside.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace {

// A depthwise convolution whose kernels and bias differ per sample (TransXNet's IDConv):
// y[b, c] = bias[b, c] + weight[b, c] (K x K) * x[b, c], stride 1, zero padding `padding`. Computed as the official
// code does: the batch folded into the channels and one grouped convolution with groups = B * C. Exported to ONNX as
// a Scan over the batch with one depthwise Conv per sample, which keeps the batch dynamic.
at::Tensor depthwise_conv2d_per_sample(const at::Tensor& self, const at::Tensor& weight, const at::Tensor& bias,
                                       int64_t padding) {
  TORCH_CHECK(self.dim() == 4, "depthwise_conv2d_per_sample: input must be (B, C, H, W), got ", self.sizes());
  const int64_t b = self.size(0), c = self.size(1), h = self.size(2), w = self.size(3);
  TORCH_CHECK(weight.dim() == 4 && weight.size(0) == b && weight.size(1) == c && weight.size(2) == weight.size(3),
              "depthwise_conv2d_per_sample: weight must be (B, C, K, K) = (", b, ", ", c, ", K, K), got ", weight.sizes());
  TORCH_CHECK(bias.dim() == 2 && bias.size(0) == b && bias.size(1) == c,
              "depthwise_conv2d_per_sample: bias must be (B, C) = (", b, ", ", c, "), got ", bias.sizes());
  const int64_t k = weight.size(2);
  auto y = at::conv2d(self.reshape({1, b * c, h, w}), weight.reshape({b * c, 1, k, k}), bias.reshape({b * c}),
                      /*stride=*/{1, 1}, /*padding=*/{padding, padding}, /*dilation=*/{1, 1}, /*groups=*/b * c);
  return y.reshape({b, c, y.size(2), y.size(3)});
}

}  // namespace

TORCH_LIBRARY(mlnetext, m) {
  m.def("depthwise_conv2d_per_sample(Tensor self, Tensor weight, Tensor bias, int padding) -> Tensor",
        &depthwise_conv2d_per_sample);
}
