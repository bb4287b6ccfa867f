// ShaveConv2D: one convolution layer of a TensorFlow graph run by the SHAVE C kernel.
//
// The kernel of export/shave/kernel/ (shave_kernel.h) behind the standard
// custom-op interface (REGISTER_OP / REGISTER_KERNEL_BUILDER); built and
// loaded by export/shave/tf_op.py, which also plans the tile. Per image of
// the batch: the NHWC float32 input is interleaved into a "DDR" buffer in
// the storage type, the [kh, kw, cin/groups, cout] kernel (or a depthwise
// [kh, kw, C, 1] one) is reordered into the kernel stack, and
// shv_run_layer computes the layer tile by tile inside a 128 KB slice,
// comb fields for a dilation, bias and ReLU fused; the output is
// de-interleaved back to NHWC float32. `stats` gives, per image, the
// shv_layer_stats of the run: slice bytes, tiles, DMA descriptors, DMA bytes
// in and out, up-sampled vectors (always 0 here).
#include <cstdint>
#include <string>

#include "shave_kernel.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace hand25d {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr int kStats = 6;  // fields of shv_layer_stats

// Output size along one axis, as tf.nn.conv2d pads; -1 if VALID does not fit.
int64_t OutputSize(int64_t size, int64_t kernel, int64_t stride, int64_t dilation, bool same) {
  if (same) return (size + stride - 1) / stride;
  int64_t span = (kernel - 1) * dilation + 1;
  return size >= span ? (size - span) / stride + 1 : -1;
}

REGISTER_OP("ShaveConv2D")
    .Input("input: float")
    .Input("kernel: float")
    .Input("bias: float")
    .Output("output: float")
    .Output("stats: int64")
    .Attr("strides: int = 1")
    .Attr("dilation: int = 1")
    .Attr("groups: int = 1")
    .Attr("padding: {'SAME', 'VALID'} = 'SAME'")
    .Attr("relu: bool = false")
    .Attr("depthwise: bool = false")
    .Attr("storage: {'fp32', 'fp16'} = 'fp32'")
    .Attr("tile_rows: int")
    .Attr("tile_blocks: int")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle input, kernel;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &kernel));
      int64_t strides, dilation;
      bool depthwise;
      std::string padding;
      TF_RETURN_IF_ERROR(c->GetAttr("strides", &strides));
      TF_RETURN_IF_ERROR(c->GetAttr("dilation", &dilation));
      TF_RETURN_IF_ERROR(c->GetAttr("depthwise", &depthwise));
      TF_RETURN_IF_ERROR(c->GetAttr("padding", &padding));
      DimensionHandle spatial[2];
      for (int axis = 0; axis < 2; ++axis) {
        DimensionHandle size = c->Dim(input, 1 + axis), taps = c->Dim(kernel, axis);
        spatial[axis] = c->UnknownDim();
        if (c->ValueKnown(size) && c->ValueKnown(taps)) {
          int64_t out = OutputSize(c->Value(size), c->Value(taps), strides, dilation,
                                   padding == "SAME");
          if (out < 1) {
            return tensorflow::errors::InvalidArgument(
                "ShaveConv2D: a VALID kernel larger than the input");
          }
          spatial[axis] = c->MakeDim(out);
        }
      }
      DimensionHandle channels = c->Dim(kernel, depthwise ? 2 : 3);
      c->set_output(0, c->MakeShape({c->Dim(input, 0), spatial[0], spatial[1], channels}));
      c->set_output(1, c->MakeShape({c->Dim(input, 0), c->MakeDim(kStats)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
One convolution layer run by the SHAVE C kernel inside a 128 KB slice
(docs/embedded.md). input: [B, H, W, Cin] float32; kernel: [kh, kw, Cin/groups,
Cout] or, with depthwise, [kh, kw, C, 1]; bias: [Cout]. output: [B, Ho, Wo,
Cout] float32; stats: [B, 6] int64 (slice bytes, tiles, DMA descriptors, DMA
bytes in, DMA bytes out, up-sampled vectors). tile_rows x tile_blocks is the
tile (planner.plan_layer); storage the element type inside the kernel.
)doc");

class ShaveConv2DOp : public OpKernel {
 public:
  explicit ShaveConv2DOp(OpKernelConstruction* context) : OpKernel(context) {
    std::string padding, storage;
    OP_REQUIRES_OK(context, context->GetAttr("strides", &strides_));
    OP_REQUIRES_OK(context, context->GetAttr("dilation", &dilation_));
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(context, context->GetAttr("padding", &padding));
    OP_REQUIRES_OK(context, context->GetAttr("relu", &relu_));
    OP_REQUIRES_OK(context, context->GetAttr("depthwise", &depthwise_));
    OP_REQUIRES_OK(context, context->GetAttr("storage", &storage));
    OP_REQUIRES_OK(context, context->GetAttr("tile_rows", &tile_rows_));
    OP_REQUIRES_OK(context, context->GetAttr("tile_blocks", &tile_blocks_));
    same_ = padding == "SAME";
    dtype_ = storage == "fp16" ? SHV_FP16 : SHV_FP32;
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& bias = context->input(2);
    OP_REQUIRES(context, input.dims() == 4 && kernel.dims() == 4 && bias.dims() == 1,
                tensorflow::errors::InvalidArgument(
                    name(), ": input and kernel must have rank 4 and bias rank 1, not ",
                    input.shape().DebugString(), ", ", kernel.shape().DebugString(), ", ",
                    bias.shape().DebugString()));
    const int batch = input.dim_size(0), channels = input.dim_size(3);
    const int out_c = depthwise_ ? kernel.dim_size(2) : kernel.dim_size(3);
    const int in_per_group = depthwise_ ? 1 : kernel.dim_size(2);
    OP_REQUIRES(context,
                (depthwise_ ? kernel.dim_size(2) == channels && kernel.dim_size(3) == 1
                            : groups_ >= 1 && in_per_group * groups_ == channels) &&
                    bias.dim_size(0) == out_c,
                tensorflow::errors::InvalidArgument(
                    name(), ": kernel ", kernel.shape().DebugString(), " and bias ",
                    bias.shape().DebugString(), " do not fit ", channels, " input channels in ",
                    groups_, " groups", depthwise_ ? " (depthwise)" : ""));
    shv_layer layer = {};
    layer.name = name().data();
    layer.name_len = static_cast<int>(name().size());
    layer.kind = depthwise_ ? SHV_DEPTHWISE : SHV_CONV;
    layer.relu = relu_;
    layer.same_padding = same_;
    layer.kh = kernel.dim_size(0);
    layer.kw = kernel.dim_size(1);
    layer.stride = strides_;
    layer.dilation = dilation_;
    layer.groups = depthwise_ ? 1 : groups_;
    layer.scale = layer.upsample = 1;
    layer.n_inputs = 1;
    layer.in_h[0] = input.dim_size(1);
    layer.in_w[0] = input.dim_size(2);
    layer.in_c[0] = channels;
    layer.out_h = OutputSize(layer.in_h[0], layer.kh, strides_, dilation_, same_);
    layer.out_w = OutputSize(layer.in_w[0], layer.kw, strides_, dilation_, same_);
    layer.out_c = out_c;
    layer.tile_rows = tile_rows_;
    layer.tile_blocks = tile_blocks_;
    OP_REQUIRES(context, layer.out_h >= 1 && layer.out_w >= 1,
                tensorflow::errors::InvalidArgument(name(), ": a VALID ", layer.kh, "x",
                                                    layer.kw, " kernel does not fit ",
                                                    input.shape().DebugString()));

    // The kernel stack, in temporaries: reordered every call (the kernel is a variable).
    const int lanes = shv_tensor_lanes(out_c, dtype_), blocks = shv_blocks(out_c, lanes);
    const int taps = layer.kh * layer.kw;
    const int width = depthwise_ ? 1 : shv_stack_width(in_per_group, out_c, groups_, lanes);
    const size_t e = shv_elem_bytes(dtype_);
    Tensor stack, stack_bias, table, counts, ddr_in, ddr_out, slice;
    OP_REQUIRES_OK(context, Temp(context, size_t(blocks) * taps * width * lanes * e, &stack));
    OP_REQUIRES_OK(context, Temp(context, size_t(blocks) * lanes * e, &stack_bias));
    OP_REQUIRES_OK(context, Temp(context, size_t(blocks) * width * 2, &table));
    OP_REQUIRES_OK(context, Temp(context, size_t(blocks) * 2, &counts));
    const float* k = kernel.flat<float>().data();
    const float* b = bias.flat<float>().data();
    auto* table_data = reinterpret_cast<uint16_t*>(Data(table));
    auto* counts_data = reinterpret_cast<uint16_t*>(Data(counts));
    if (depthwise_) {
      shv_reorder_depthwise(dtype_, k, b, layer.kh, layer.kw, out_c, lanes, Data(stack),
                            Data(stack_bias), table_data, counts_data);
    } else {
      shv_reorder_kernel(dtype_, k, b, layer.kh, layer.kw, in_per_group, out_c, groups_, lanes,
                         Data(stack), Data(stack_bias), table_data, counts_data);
    }
    layer.weights = {Data(stack), Data(stack_bias), table_data, counts_data, blocks, taps, width,
                     lanes};
    char error[512];
    OP_REQUIRES(context, shv_check_layer(&layer, dtype_, error, sizeof error) == SHV_OK,
                tensorflow::errors::InvalidArgument(error));

    Tensor* output = nullptr;
    Tensor* stats = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({batch, layer.out_h, layer.out_w, out_c}), &output));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({batch, kStats}), &stats));
    OP_REQUIRES_OK(context, Temp(context, shv_tensor_bytes(layer.in_h[0], layer.in_w[0],
                                                           channels, dtype_), &ddr_in));
    OP_REQUIRES_OK(context, Temp(context, shv_tensor_bytes(layer.out_h, layer.out_w, out_c,
                                                           dtype_), &ddr_out));
    OP_REQUIRES_OK(context, Temp(context, SHV_SLICE_BYTES, &slice));
    shv_tensor in = {Data(ddr_in), layer.in_h[0], layer.in_w[0], channels, 0, 0};
    in.lanes = shv_tensor_lanes(channels, dtype_);
    in.blocks = shv_blocks(channels, in.lanes);
    shv_tensor out = {Data(ddr_out), layer.out_h, layer.out_w, out_c, blocks, lanes};
    const size_t in_size = size_t(layer.in_h[0]) * layer.in_w[0] * channels;
    const size_t out_size = size_t(layer.out_h) * layer.out_w * out_c;
    auto stats_data = stats->matrix<int64_t>();
    for (int image = 0; image < batch; ++image) {
      shv_interleave(dtype_, input.flat<float>().data() + image * in_size, layer.in_h[0],
                     layer.in_w[0], channels, in.data);
      shv_layer_stats run;
      const int status = shv_run_layer(&layer, dtype_, &in, &out, Data(slice), SHV_SLICE_BYTES,
                                       &run, error, sizeof error);
      OP_REQUIRES(context, status == SHV_OK,
                  status == SHV_ERR_SLICE ? tensorflow::errors::ResourceExhausted(error)
                                          : tensorflow::errors::InvalidArgument(error));
      shv_deinterleave(dtype_, out.data, layer.out_h, layer.out_w, out_c,
                       output->flat<float>().data() + image * out_size);
      const uint64_t fields[kStats] = {run.peak_bytes, run.tiles, run.dma_transfers,
                                       run.dma_in_bytes, run.dma_out_bytes, run.expand_vectors};
      for (int i = 0; i < kStats; ++i) stats_data(image, i) = static_cast<int64_t>(fields[i]);
    }
  }

 private:
  static absl::Status Temp(OpKernelContext* context, size_t bytes, Tensor* tensor) {
    return context->allocate_temp(tensorflow::DT_UINT8,
                                  TensorShape({static_cast<int64_t>(bytes)}), tensor);
  }
  static uint8_t* Data(Tensor& tensor) { return tensor.flat<uint8_t>().data(); }

  int64_t strides_, dilation_, groups_, tile_rows_, tile_blocks_;
  bool relu_, depthwise_, same_;
  shv_dtype dtype_;
};

REGISTER_KERNEL_BUILDER(Name("ShaveConv2D").Device(DEVICE_CPU), ShaveConv2DOp);

}  // namespace
}  // namespace hand25d
