/* The C kernel on its own: tiled, comb-dilated, grouped layers against a naive
 * direct convolution, in fp32 and fp16, inside the slice; fp16 conversions.
 * Exit status 0 if every check passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "shave_kernel.h"

static int failures = 0;

#define CHECK(condition, ...)                                   \
  do {                                                          \
    if (!(condition)) {                                         \
      ++failures;                                               \
      fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);   \
      fprintf(stderr, __VA_ARGS__);                             \
      fprintf(stderr, "\n");                                    \
    }                                                           \
  } while (0)

static uint32_t rng_state = 12345u;
static float uniform(void) { /* [-1, 1) */
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

/* Storage rounding of a value (what the kernel stores of it). */
static float rounded(shv_dtype dtype, float v) {
  return dtype == SHV_FP16 ? shv_half_to_float_soft(shv_float_to_half_soft(v)) : v;
}

static void test_fp16_conversions(void) {
  /* Soft conversions against known values, and against _Float16 if built with it. */
  CHECK(shv_float_to_half_soft(1.0f) == 0x3c00u, "1.0");
  CHECK(shv_float_to_half_soft(65504.0f) == 0x7bffu, "max");
  CHECK(shv_float_to_half_soft(65520.0f) == 0x7c00u, "65520 rounds to inf");
  CHECK(shv_float_to_half_soft(ldexpf(1.0f, -24)) == 0x0001u, "smallest subnormal");
  CHECK(shv_float_to_half_soft(ldexpf(1.0f, -25)) == 0x0000u, "tie to even zero");
  CHECK(shv_float_to_half_soft(ldexpf(3.0f, -26)) == 0x0001u, "above the tie");
  CHECK(shv_float_to_half_soft(1.0f + ldexpf(1.0f, -11)) == 0x3c00u, "tie to even 1.0");
  CHECK(shv_half_to_float_soft(0x0001u) == ldexpf(1.0f, -24), "subnormal to float");
  CHECK(shv_half_to_float_soft(0xc000u) == -2.0f, "-2");
#if SHV_NATIVE_FP16
  for (uint32_t h = 0; h < 65536u; ++h) {
    float soft = shv_half_to_float_soft((uint16_t)h), hard = shv_h2f((uint16_t)h);
    CHECK(soft == hard || (soft != soft && hard != hard), "half 0x%04x", h);
  }
  for (uint32_t bits = 0; bits < 0x7f800000u; bits += 4099u) {
    float f;
    memcpy(&f, &bits, sizeof f);
    CHECK(shv_float_to_half_soft(f) == shv_f2h(f), "float 0x%08x", bits);
    CHECK(shv_float_to_half_soft(-f) == shv_f2h(-f), "float -0x%08x", bits);
  }
#endif
}

/* out = relu(bias + conv) in double, directly from the TF-layout kernel. */
static void direct_conv(const float *in, int h, int w, int cin, const float *kernel,
                        const float *bias, int kh, int kw, int cout, int groups, int depthwise,
                        int stride, int dilation, int top, int left, int out_h, int out_w,
                        int relu, double *out) {
  int in_g = depthwise ? 1 : cin / groups, out_g = depthwise ? 1 : cout / groups;
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int o = 0; o < cout; ++o) {
        double acc = bias[o];
        for (int dy = 0; dy < kh; ++dy)
          for (int dx = 0; dx < kw; ++dx) {
            int iy = y * stride + dy * dilation - top, ix = x * stride + dx * dilation - left;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            for (int i = 0; i < in_g; ++i) {
              int c = (o / out_g) * in_g + i;
              double k = depthwise ? kernel[(dy * kw + dx) * cin + o]
                                   : kernel[((dy * kw + dx) * in_g + i) * cout + o];
              acc += in[((size_t)iy * w + ix) * cin + c] * k;
            }
          }
        out[((size_t)y * out_w + x) * cout + o] = relu && acc < 0 ? 0 : acc;
      }
}

typedef struct {
  const char *name;
  int h, w, cin, cout, groups, depthwise, k, stride, dilation, same, relu, rows, blocks;
} layer_case;

static void test_layer(const layer_case *t, shv_dtype dtype) {
  int top = 0, left = 0, out_h, out_w, span = (t->k - 1) * t->dilation + 1;
  if (t->same) {
    out_h = (t->h + t->stride - 1) / t->stride, out_w = (t->w + t->stride - 1) / t->stride;
    int pad_h = (out_h - 1) * t->stride + span - t->h;
    int pad_w = (out_w - 1) * t->stride + span - t->w;
    top = pad_h > 0 ? pad_h / 2 : 0, left = pad_w > 0 ? pad_w / 2 : 0;
  } else {
    out_h = (t->h - span) / t->stride + 1, out_w = (t->w - span) / t->stride + 1;
  }
  int in_g = t->depthwise ? 1 : t->cin / t->groups, lanes = shv_tensor_lanes(t->cout, dtype);
  int blocks = shv_blocks(t->cout, lanes), taps = t->k * t->k;
  int width = t->depthwise ? 1 : shv_stack_width(in_g, t->cout, t->groups, lanes);
  size_t e = shv_elem_bytes(dtype), n_in = (size_t)t->h * t->w * t->cin;
  size_t n_kernel = (size_t)taps * (t->depthwise ? t->cin : in_g * t->cout);
  size_t n_out = (size_t)out_h * out_w * t->cout;
  float *in = malloc(n_in * sizeof *in), *kernel = malloc(n_kernel * sizeof *kernel);
  float *bias = malloc(t->cout * sizeof *bias), *got = malloc(n_out * sizeof *got);
  double *want = malloc(n_out * sizeof *want);
  /* The reference sees the values the kernel stores. */
  for (size_t i = 0; i < n_in; ++i) in[i] = rounded(dtype, uniform());
  for (size_t i = 0; i < n_kernel; ++i) kernel[i] = rounded(dtype, uniform());
  for (int i = 0; i < t->cout; ++i) bias[i] = rounded(dtype, uniform());
  direct_conv(in, t->h, t->w, t->cin, kernel, bias, t->k, t->k, t->cout, t->groups,
              t->depthwise, t->stride, t->dilation, top, left, out_h, out_w, t->relu, want);

  uint8_t *stack = malloc((size_t)blocks * taps * width * lanes * e);
  uint8_t *stack_bias = malloc((size_t)blocks * lanes * e);
  uint16_t *table = malloc((size_t)blocks * width * 2), *counts = malloc((size_t)blocks * 2);
  if (t->depthwise)
    shv_reorder_depthwise(dtype, kernel, bias, t->k, t->k, t->cout, lanes, stack, stack_bias,
                          table, counts);
  else
    shv_reorder_kernel(dtype, kernel, bias, t->k, t->k, in_g, t->cout, t->groups, lanes, stack,
                       stack_bias, table, counts);
  shv_layer layer;
  memset(&layer, 0, sizeof layer);
  layer.name = t->name;
  layer.name_len = (int)strlen(t->name);
  layer.kind = t->depthwise ? SHV_DEPTHWISE : SHV_CONV;
  layer.relu = t->relu, layer.same_padding = t->same;
  layer.kh = layer.kw = t->k, layer.stride = t->stride, layer.dilation = t->dilation;
  layer.groups = t->depthwise ? 1 : t->groups, layer.scale = layer.upsample = 1;
  layer.n_inputs = 1, layer.in_h[0] = t->h, layer.in_w[0] = t->w, layer.in_c[0] = t->cin;
  layer.out_h = out_h, layer.out_w = out_w, layer.out_c = t->cout;
  layer.tile_rows = t->rows, layer.tile_blocks = t->blocks ? t->blocks : blocks;
  layer.weights.stack = stack, layer.weights.bias = stack_bias;
  layer.weights.table = table, layer.weights.counts = counts;
  layer.weights.blocks = blocks, layer.weights.taps = taps, layer.weights.width = width;
  layer.weights.lanes = lanes;
  char err[256];
  CHECK(shv_check_layer(&layer, dtype, err, sizeof err) == SHV_OK, "%s: %s", t->name, err);

  shv_tensor src = {malloc(shv_tensor_bytes(t->h, t->w, t->cin, dtype)), t->h, t->w, t->cin, 0, 0};
  src.lanes = shv_tensor_lanes(t->cin, dtype), src.blocks = shv_blocks(t->cin, src.lanes);
  shv_tensor dst = {malloc(shv_tensor_bytes(out_h, out_w, t->cout, dtype)), out_h, out_w,
                    t->cout, blocks, lanes};
  shv_interleave(dtype, in, t->h, t->w, t->cin, src.data);
  uint8_t *slice = malloc(SHV_SLICE_BYTES); /* malloc: aligned for any type */
  memset(slice, 0xa5, SHV_SLICE_BYTES);
  shv_layer_stats stats;
  int status = shv_run_layer(&layer, dtype, &src, &dst, slice, SHV_SLICE_BYTES, &stats, err,
                             sizeof err);
  CHECK(status == SHV_OK, "%s: %s", t->name, err);
  shv_deinterleave(dtype, dst.data, out_h, out_w, t->cout, got);

  double worst = 0, largest = 0;
  for (size_t i = 0; i < n_out; ++i) {
    double d = fabs(got[i] - want[i]);
    if (d > worst) worst = d;
    if (fabs(want[i]) > largest) largest = fabs(want[i]);
  }
  /* fp32: accumulation order; fp16: the output's rounding (2^-11 relative). */
  double bound = dtype == SHV_FP32 ? 1e-5 * (1 + largest) : ldexp(1.0, -10) * (1 + largest);
  CHECK(worst <= bound, "%s (%s): max |C - direct| = %g > %g", t->name,
        dtype == SHV_FP32 ? "fp32" : "fp16", worst, bound);

  /* Every output written once; several tiles; nothing past the layer's buffers. */
  int expected_tiles = 0, all = shv_blocks(t->cout, lanes);
  for (int p = 0; p < t->dilation; ++p) {
    int field_rows = out_h > p ? (out_h - p + t->dilation - 1) / t->dilation : 0;
    int block_tiles = (all + layer.tile_blocks - 1) / layer.tile_blocks;
    int fields_q = t->dilation < out_w ? t->dilation : out_w;
    expected_tiles += (field_rows + t->rows - 1) / t->rows * block_tiles * fields_q;
  }
  CHECK(stats.tiles == (uint64_t)expected_tiles && stats.tiles > 1, "%s: %llu tiles, not %d",
        t->name, (unsigned long long)stats.tiles, expected_tiles);
  CHECK(stats.dma_out_bytes == (uint64_t)out_h * out_w * blocks * lanes * e,
        "%s: %llu bytes out", t->name, (unsigned long long)stats.dma_out_bytes);
  CHECK(stats.peak_bytes == shv_layer_slice_bytes(&layer, dtype) &&
            stats.peak_bytes <= SHV_SLICE_BYTES, "%s: peak %llu", t->name,
        (unsigned long long)stats.peak_bytes);
  int untouched = 1;
  for (size_t i = stats.peak_bytes; i < SHV_SLICE_BYTES; ++i) untouched &= slice[i] == 0xa5;
  CHECK(untouched, "%s: the kernel wrote past its %llu slice bytes", t->name,
        (unsigned long long)stats.peak_bytes);

  /* A tile that does not fit is refused, naming the layer. */
  layer.tile_rows = out_h;
  status = shv_run_layer(&layer, dtype, &src, &dst, slice, 1024, &stats, err, sizeof err);
  CHECK(status == SHV_ERR_SLICE && strstr(err, t->name) && strstr(err, "1024 bytes"),
        "%s: a 1 KB slice gave %d (%s)", t->name, status, err);

  free(in), free(kernel), free(bias), free(got), free(want), free(stack), free(stack_bias);
  free(table), free(counts), free(src.data), free(dst.data), free(slice);
}

int main(void) {
  test_fp16_conversions();
  const layer_case cases[] = {
      /* 3 groups of 4 inputs and 4 filters, dilation 3, SAME, ReLU, 2-row tiles:
       * fp16 blocks straddle groups (regrouped), fp32 blocks are one group each. */
      {"grouped_dilated", 17, 21, 12, 12, 3, 0, 3, 1, 3, 1, 1, 2, 0},
      /* Dense 5x5, dilation 2, VALID, outputs not a multiple of the lanes. */
      {"dense_dilated_valid", 15, 19, 6, 10, 1, 0, 5, 1, 2, 0, 0, 3, 0},
      /* Depthwise 3x3, stride 2, channel-block tiles of one block. */
      {"depthwise_strided", 16, 18, 20, 20, 1, 1, 3, 2, 1, 1, 1, 2, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    test_layer(&cases[i], SHV_FP32);
    test_layer(&cases[i], SHV_FP16);
  }
  printf("shave_kernel_test: %s (fp16 via %s)\n", failures ? "FAILED" : "passed",
         SHV_NATIVE_FP16 ? "_Float16" : "software");
  return failures ? 1 : 0;
}
