/* The naive channel-planar im2col + GEMM baseline (shave_naive.h). */
#include "internal.h"
#include "shave_naive.h"

int shv_naive_patch(int k, shv_dtype dtype) {
  int lanes = shv_lanes(dtype);
  return (k + lanes - 1) / lanes * lanes;
}

#define LOAD_F32(p) (*(p))
#define LOAD_F16(p) shv_h2f(*(p))

/* out[o][n] = bias[o] + dot(columns[n], weights[o]) for the outputs of one
 * group: L partial sums along K', then a horizontal sum (log2 L adds). */
#define DEFINE_GEMM(NAME, T, LANES, LOAD)                                                     \
  static void NAME(const T *columns, int pixels, int patch, const T *weights, const T *bias, \
                   int outputs, int relu, T *out, shv_dtype dtype) {                         \
    for (int n = 0; n < pixels; ++n) {                                                        \
      const T *column = columns + (size_t)n * patch;                                          \
      for (int o = 0; o < outputs; ++o) {                                                     \
        const T *row = weights + (size_t)o * patch;                                           \
        float part[LANES] = {0};                                                              \
        for (int k = 0; k < patch; k += LANES)                                                \
          for (int l = 0; l < LANES; ++l) part[l] += LOAD(column + k + l) * LOAD(row + k + l); \
        for (int step = LANES / 2; step; step /= 2)                                           \
          for (int l = 0; l < step; ++l) part[l] += part[l + step];                           \
        float v = LOAD(bias + o) + part[0];                                                   \
        shv_store(dtype, out, (size_t)o * pixels + n, relu && v < 0.f ? 0.f : v);                 \
      }                                                                                       \
    }                                                                                         \
  }

DEFINE_GEMM(gemm_f32, float, 4, LOAD_F32)
DEFINE_GEMM(gemm_f16, uint16_t, 8, LOAD_F16)

void shv_naive_conv(shv_dtype dtype, const void *in, int cin, int h, int w, const void *weights,
                    const void *bias, int cout, int groups, int kh, int kw, int stride,
                    int dilation, int pad_top, int pad_left, int out_h, int out_w, int relu,
                    void *columns, void *out) {
  const int cin_g = cin / groups, cout_g = cout / groups, pixels = out_h * out_w;
  const int k = cin_g * kh * kw, patch = shv_naive_patch(k, dtype);
  const size_t plane = (size_t)h * w;
  for (int g = 0; g < groups; ++g) {
    /* im2col: one element per copy, padding and the K' - K tail as zeros. */
    for (int oy = 0; oy < out_h; ++oy)
      for (int ox = 0; ox < out_w; ++ox) {
        size_t row = ((size_t)oy * out_w + ox) * patch;
        int i = 0;
        for (int c = 0; c < cin_g; ++c)
          for (int dy = 0; dy < kh; ++dy)
            for (int dx = 0; dx < kw; ++dx, ++i) {
              int y = oy * stride + dy * dilation - pad_top;
              int x = ox * stride + dx * dilation - pad_left;
              size_t at = (size_t)(g * cin_g + c) * plane + (size_t)y * w + x;
              float v = y >= 0 && y < h && x >= 0 && x < w ? shv_load(dtype, in, at) : 0.f;
              shv_store(dtype, columns, row + i, v);
            }
        for (; i < patch; ++i) shv_store(dtype, columns, row + i, 0.f);
      }
    size_t first = (size_t)g * cout_g;
    if (dtype == SHV_FP32)
      gemm_f32((const float *)columns, pixels, patch, (const float *)weights + first * patch,
               (const float *)bias + first, cout_g, relu, (float *)out + first * pixels, dtype);
    else
      gemm_f16((const uint16_t *)columns, pixels, patch,
               (const uint16_t *)weights + first * patch, (const uint16_t *)bias + first, cout_g,
               relu, (uint16_t *)out + first * pixels, dtype);
  }
}

void shv_naive_add(shv_dtype dtype, const void *const *inputs, int n, size_t count, int relu,
                   void *out) {
  for (size_t i = 0; i < count; ++i) {
    float v = 0.f;
    for (int t = 0; t < n; ++t) v += shv_load(dtype, inputs[t], i);
    shv_store(dtype, out, i, relu && v < 0.f ? 0.f : v);
  }
}

void shv_naive_concat(shv_dtype dtype, const void *const *inputs, const int *channels, int n,
                      size_t plane, void *out) {
  size_t e = shv_elem_bytes(dtype), at = 0;
  for (int t = 0; t < n; ++t) {
    memcpy((uint8_t *)out + at * e, inputs[t], (size_t)channels[t] * plane * e);
    at += (size_t)channels[t] * plane;
  }
}

void shv_naive_shuffle(shv_dtype dtype, const void *in, int c, int groups, size_t plane,
                       void *out) {
  size_t e = shv_elem_bytes(dtype);
  for (int ch = 0; ch < c; ++ch)
    memcpy((uint8_t *)out + (size_t)ch * plane * e,
           (const uint8_t *)in + (size_t)((ch % groups) * (c / groups) + ch / groups) * plane * e,
           plane * e);
}

void shv_naive_resize(shv_dtype dtype, const void *in, int c, int h, int w, int scale, void *out) {
  size_t e = shv_elem_bytes(dtype);
  int out_h = h * scale, out_w = w * scale;
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x)
        memcpy((uint8_t *)out + (((size_t)ch * out_h + y) * out_w + x) * e,
               (const uint8_t *)in + (((size_t)ch * h + y / scale) * w + x / scale) * e, e);
}

void shv_naive_max_pool(shv_dtype dtype, const void *in, int c, int h, int w, int k, void *out) {
  int out_h = h / k, out_w = w / k;
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x) {
        float best = shv_load(dtype, in, ((size_t)ch * h + y * k) * w + x * k);
        for (int dy = 0; dy < k; ++dy)
          for (int dx = 0; dx < k; ++dx) {
            float v = shv_load(dtype, in, ((size_t)ch * h + y * k + dy) * w + x * k + dx);
            if (v > best) best = v;
          }
        shv_store(dtype, out, ((size_t)ch * out_h + y) * out_w + x, best);
      }
}

void shv_naive_global_avg_pool(shv_dtype dtype, const void *in, int c, int h, int w, void *out) {
  for (int ch = 0; ch < c; ++ch) {
    float sum = 0.f;
    for (size_t i = 0; i < (size_t)h * w; ++i) sum += shv_load(dtype, in, (size_t)ch * h * w + i);
    shv_store(dtype, out, (size_t)ch, sum / (float)((size_t)h * w));
  }
}
