/* Element types, the interleaved layout, the kernel stack and the tile kernels.
 *
 * C form of export/shave/layout.py and conv.py (docs/embedded.md). */
#include "internal.h"

/* ---- element types ------------------------------------------------------ */

float shv_half_to_float_soft(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa) { /* subnormal: normalise */
    uint32_t shifts = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shifts;
    }
    bits = sign | ((113u - shifts) << 23) | ((mantissa & 0x3ffu) << 13);
  } else {
    bits = sign;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t shv_float_to_half_soft(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf, or NaN kept quiet */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
  if (ax >= 0x477ff000u) /* >= 65520 rounds to inf */
    return (uint16_t)(sign | 0x7c00u);
  if (ax < 0x38800000u) { /* below 2^-14: subnormal or zero */
    if (ax <= 0x33000000u) /* at most 2^-25: ties to the even zero */
      return sign;
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e, q = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (q & 1u))) ++q;
    return (uint16_t)(sign | q);
  }
  uint32_t q = (ax >> 13) - (112u << 10), rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q;
  return (uint16_t)(sign | q);
}

int shv_native_fp16(void) { return SHV_NATIVE_FP16; }

size_t shv_elem_bytes(shv_dtype dtype) { return dtype == SHV_FP16 ? 2u : 4u; }

int shv_lanes(shv_dtype dtype) { return dtype == SHV_FP16 ? 8 : 4; }

int shv_tensor_lanes(int channels, shv_dtype dtype) {
  return channels == 1 ? 1 : shv_lanes(dtype);
}

int shv_blocks(int channels, int lanes) { return (channels + lanes - 1) / lanes; }

/* ---- layout ------------------------------------------------------------- */

size_t shv_tensor_bytes(int h, int w, int c, shv_dtype dtype) {
  int lanes = shv_tensor_lanes(c, dtype);
  return (size_t)h * w * shv_blocks(c, lanes) * lanes * shv_elem_bytes(dtype);
}

void shv_interleave(shv_dtype dtype, const float *src, int h, int w, int c, void *dst) {
  int lanes = shv_tensor_lanes(c, dtype), pixel = shv_blocks(c, lanes) * lanes;
  for (size_t p = 0; p < (size_t)h * w; ++p)
    for (int i = 0; i < pixel; ++i)
      shv_store(dtype, dst, p * pixel + i, i < c ? src[p * c + i] : 0.f);
}

void shv_deinterleave(shv_dtype dtype, const void *src, int h, int w, int c, float *dst) {
  int lanes = shv_tensor_lanes(c, dtype), pixel = shv_blocks(c, lanes) * lanes;
  for (size_t p = 0; p < (size_t)h * w; ++p)
    for (int i = 0; i < c; ++i) dst[p * c + i] = shv_load(dtype, src, p * pixel + i);
}

/* Groups of the output channels of block `ob`: first and last group index. */
static void block_groups(int ob, int cout, int groups, int lanes, int *first, int *last) {
  int per_group = cout / groups, end = (ob + 1) * lanes < cout ? (ob + 1) * lanes : cout;
  *first = ob * lanes / per_group;
  *last = (end - 1) / per_group;
}

int shv_stack_width(int in_per_group, int cout, int groups, int lanes) {
  if (groups < 1 || cout % groups) return 0;
  int width = 0;
  for (int ob = 0; ob < shv_blocks(cout, lanes); ++ob) {
    int first, last;
    block_groups(ob, cout, groups, lanes, &first, &last);
    if ((last - first + 1) * in_per_group > width) width = (last - first + 1) * in_per_group;
  }
  return width;
}

void shv_reorder_kernel(shv_dtype dtype, const float *kernel, const float *bias, int kh, int kw,
                        int in_per_group, int cout, int groups, int lanes, void *stack,
                        void *stack_bias, uint16_t *table, uint16_t *counts) {
  int blocks = shv_blocks(cout, lanes), taps = kh * kw, per_group = cout / groups;
  int width = shv_stack_width(in_per_group, cout, groups, lanes);
  for (int ob = 0; ob < blocks; ++ob) {
    int first, last;
    block_groups(ob, cout, groups, lanes, &first, &last);
    int count = (last - first + 1) * in_per_group;
    counts[ob] = (uint16_t)count;
    for (int i = 0; i < width; ++i) /* past the set: the last channel again, zero weights */
      table[ob * width + i] = (uint16_t)(first * in_per_group + (i < count ? i : count - 1));
    for (int l = 0; l < lanes; ++l) {
      int o = ob * lanes + l;
      shv_store(dtype, stack_bias, (size_t)ob * lanes + l, o < cout ? bias[o] : 0.f);
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < width; ++i) {
          int c = table[ob * width + i];
          float v = 0.f;
          if (i < count && o < cout && c / in_per_group == o / per_group)
            v = kernel[((size_t)t * in_per_group + c % in_per_group) * cout + o];
          shv_store(dtype, stack, (((size_t)ob * taps + t) * width + i) * lanes + l, v);
        }
    }
  }
}

void shv_reorder_depthwise(shv_dtype dtype, const float *kernel, const float *bias, int kh,
                           int kw, int channels, int lanes, void *stack, void *stack_bias,
                           uint16_t *table, uint16_t *counts) {
  int blocks = shv_blocks(channels, lanes), taps = kh * kw;
  for (int b = 0; b < blocks; ++b) {
    table[b] = 0;
    counts[b] = 1;
    for (int l = 0; l < lanes; ++l) {
      int c = b * lanes + l;
      shv_store(dtype, stack_bias, (size_t)b * lanes + l, c < channels ? bias[c] : 0.f);
      for (int t = 0; t < taps; ++t)
        shv_store(dtype, stack, ((size_t)b * taps + t) * lanes + l,
              c < channels ? kernel[(size_t)t * channels + c] : 0.f);
    }
  }
}

/* ---- tile kernels ------------------------------------------------------- */

#define LOAD_F32(p) (*(p))
#define LOAD_F16(p) shv_h2f(*(p))
#define STORE_F32(p, v) (*(p) = (v))
#define STORE_F16(p, v) (*(p) = shv_f2h(v))
#define PIXELS 4 /* accumulators per loop: adjacent output pixels of one block */

/* The convolution loop for element type T with `FIXED` lanes (0: any). For
 * each output block, row and group of PIXELS adjacent pixels: accumulators
 * start at the bias; per tap and input channel of the block's set, one
 * weight-vector load and, per pixel, a scalar load broadcast to the lanes
 * and a vector MAC; then ReLU and a vector store per pixel. */
#define DEFINE_CONV_TILE(NAME, T, OT, FIXED, LOAD, STORE)                                       \
  static void NAME(const T *tile, int tile_cols, int pix, const T *stack, const T *bias,        \
                   const uint16_t *table, const uint16_t *counts, int blocks, int taps,         \
                   int width, int kw, int stride, int relu, OT *out, int out_rows,              \
                   int out_cols, int lanes_given) {                                             \
    const int lanes = FIXED ? FIXED : lanes_given;                                              \
    const ptrdiff_t step = (ptrdiff_t)stride * pix;                                             \
    for (int b = 0; b < blocks; ++b) {                                                          \
      const T *wb = stack + (size_t)b * taps * width * lanes;                                   \
      const uint16_t *tb = table + (size_t)b * width;                                           \
      const int count = counts[b];                                                              \
      for (int oy = 0; oy < out_rows; ++oy) {                                                   \
        int ox = 0;                                                                             \
        for (; ox + PIXELS <= out_cols; ox += PIXELS) {                                         \
          float acc[PIXELS][SHV_MAX_LANES];                                                     \
          for (int p = 0; p < PIXELS; ++p)                                                      \
            for (int l = 0; l < lanes; ++l) acc[p][l] = LOAD(bias + (size_t)b * lanes + l);     \
          for (int t = 0; t < taps; ++t) {                                                      \
            const T *px = tile + ((size_t)(oy * stride + t / kw) * tile_cols +                  \
                                  (size_t)ox * stride + t % kw) * pix;                          \
            const T *wt = wb + (size_t)t * width * lanes;                                       \
            for (int i = 0; i < count; ++i) {                                                   \
              const T *wv = wt + (size_t)i * lanes;                                             \
              const T *x = px + tb[i];                                                          \
              const float x0 = LOAD(x), x1 = LOAD(x + step), x2 = LOAD(x + 2 * step),           \
                          x3 = LOAD(x + 3 * step);                                              \
              for (int l = 0; l < lanes; ++l) {                                                 \
                const float wl = LOAD(wv + l);                                                  \
                acc[0][l] += x0 * wl;                                                           \
                acc[1][l] += x1 * wl;                                                           \
                acc[2][l] += x2 * wl;                                                           \
                acc[3][l] += x3 * wl;                                                           \
              }                                                                                 \
            }                                                                                   \
          }                                                                                     \
          for (int p = 0; p < PIXELS; ++p) {                                                    \
            OT *o = out + (((size_t)oy * out_cols + ox + p) * blocks + b) * lanes;              \
            for (int l = 0; l < lanes; ++l) {                                                   \
              float v = acc[p][l];                                                              \
              if (relu && v < 0.f) v = 0.f;                                                     \
              STORE(o + l, v);                                                                  \
            }                                                                                   \
          }                                                                                     \
        }                                                                                       \
        for (; ox < out_cols; ++ox) {                                                           \
          float acc[SHV_MAX_LANES];                                                             \
          for (int l = 0; l < lanes; ++l) acc[l] = LOAD(bias + (size_t)b * lanes + l);          \
          for (int t = 0; t < taps; ++t) {                                                      \
            const T *px = tile + ((size_t)(oy * stride + t / kw) * tile_cols +                  \
                                  (size_t)ox * stride + t % kw) * pix;                          \
            const T *wt = wb + (size_t)t * width * lanes;                                       \
            for (int i = 0; i < count; ++i) {                                                   \
              const float x0 = LOAD(px + tb[i]);                                                \
              for (int l = 0; l < lanes; ++l) acc[l] += x0 * LOAD(wt + (size_t)i * lanes + l);  \
            }                                                                                   \
          }                                                                                     \
          OT *o = out + (((size_t)oy * out_cols + ox) * blocks + b) * lanes;                    \
          for (int l = 0; l < lanes; ++l) {                                                     \
            float v = acc[l];                                                                   \
            if (relu && v < 0.f) v = 0.f;                                                       \
            STORE(o + l, v);                                                                    \
          }                                                                                     \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
  }

DEFINE_CONV_TILE(conv_f32_l4, float, float, 4, LOAD_F32, STORE_F32)
DEFINE_CONV_TILE(conv_f32_any, float, float, 0, LOAD_F32, STORE_F32)
DEFINE_CONV_TILE(conv_f16_l8, uint16_t, uint16_t, 8, LOAD_F16, STORE_F16)
DEFINE_CONV_TILE(conv_f16_any, uint16_t, uint16_t, 0, LOAD_F16, STORE_F16)
DEFINE_CONV_TILE(conv_f16_l8_out32, uint16_t, float, 8, LOAD_F16, STORE_F32)
DEFINE_CONV_TILE(conv_f16_any_out32, uint16_t, float, 0, LOAD_F16, STORE_F32)

void shv_conv_tile(shv_dtype dtype, shv_dtype out_dtype, const void *tile, int tile_cols,
                   int tile_pixel, const shv_weights *w, int block0, int blocks, int kh, int kw,
                   int stride, int relu, void *out, int out_rows, int out_cols) {
  (void)kh;
  size_t first = (size_t)block0 * w->taps * w->width * w->lanes;
  const uint16_t *table = w->table + (size_t)block0 * w->width, *counts = w->counts + block0;
  if (dtype == SHV_FP32) {
    const float *stack = (const float *)w->stack + first;
    const float *bias = (const float *)w->bias + (size_t)block0 * w->lanes;
    (w->lanes == 4 ? conv_f32_l4 : conv_f32_any)(
        (const float *)tile, tile_cols, tile_pixel, stack, bias, table, counts, blocks, w->taps,
        w->width, kw, stride, relu, (float *)out, out_rows, out_cols, w->lanes);
  } else {
    const uint16_t *stack = (const uint16_t *)w->stack + first;
    const uint16_t *bias = (const uint16_t *)w->bias + (size_t)block0 * w->lanes;
    if (out_dtype == SHV_FP32)
      (w->lanes == 8 ? conv_f16_l8_out32 : conv_f16_any_out32)(
          (const uint16_t *)tile, tile_cols, tile_pixel, stack, bias, table, counts, blocks,
          w->taps, w->width, kw, stride, relu, (float *)out, out_rows, out_cols, w->lanes);
    else
      (w->lanes == 8 ? conv_f16_l8 : conv_f16_any)(
          (const uint16_t *)tile, tile_cols, tile_pixel, stack, bias, table, counts, blocks,
          w->taps, w->width, kw, stride, relu, (uint16_t *)out, out_rows, out_cols, w->lanes);
  }
}

/* Depthwise: per output pixel and block, one lane-wise vector MAC per tap. */
#define DEFINE_DEPTHWISE_TILE(NAME, T, OT, FIXED, LOAD, STORE)                                \
  static void NAME(const T *tile, int tile_cols, const T *stack, const T *bias, int blocks,   \
                   int taps, int kw, int stride, int relu, OT *out, int out_rows,             \
                   int out_cols, int lanes_given) {                                           \
    const int lanes = FIXED ? FIXED : lanes_given, pix = blocks * lanes;                      \
    for (int oy = 0; oy < out_rows; ++oy)                                                     \
      for (int ox = 0; ox < out_cols; ++ox)                                                   \
        for (int b = 0; b < blocks; ++b) {                                                    \
          float acc[SHV_MAX_LANES];                                                           \
          for (int l = 0; l < lanes; ++l) acc[l] = LOAD(bias + (size_t)b * lanes + l);        \
          for (int t = 0; t < taps; ++t) {                                                    \
            const T *x = tile + ((size_t)(oy * stride + t / kw) * tile_cols +                 \
                                 (size_t)ox * stride + t % kw) * pix + (size_t)b * lanes;     \
            const T *wv = stack + ((size_t)b * taps + t) * lanes;                             \
            for (int l = 0; l < lanes; ++l) acc[l] += LOAD(x + l) * LOAD(wv + l);             \
          }                                                                                   \
          OT *o = out + ((size_t)oy * out_cols + ox) * pix + (size_t)b * lanes;               \
          for (int l = 0; l < lanes; ++l) {                                                   \
            float v = acc[l];                                                                 \
            if (relu && v < 0.f) v = 0.f;                                                     \
            STORE(o + l, v);                                                                  \
          }                                                                                   \
        }                                                                                     \
  }

DEFINE_DEPTHWISE_TILE(depthwise_f32_l4, float, float, 4, LOAD_F32, STORE_F32)
DEFINE_DEPTHWISE_TILE(depthwise_f32_any, float, float, 0, LOAD_F32, STORE_F32)
DEFINE_DEPTHWISE_TILE(depthwise_f16_l8, uint16_t, uint16_t, 8, LOAD_F16, STORE_F16)
DEFINE_DEPTHWISE_TILE(depthwise_f16_any, uint16_t, uint16_t, 0, LOAD_F16, STORE_F16)
DEFINE_DEPTHWISE_TILE(depthwise_f16_l8_out32, uint16_t, float, 8, LOAD_F16, STORE_F32)
DEFINE_DEPTHWISE_TILE(depthwise_f16_any_out32, uint16_t, float, 0, LOAD_F16, STORE_F32)

void shv_depthwise_tile(shv_dtype dtype, shv_dtype out_dtype, const void *tile, int tile_cols,
                        const shv_weights *w, int block0, int blocks, int kh, int kw, int stride,
                        int relu, void *out, int out_rows, int out_cols) {
  (void)kh;
  size_t first = (size_t)block0 * w->taps * w->lanes;
  if (dtype == SHV_FP32) {
    const float *stack = (const float *)w->stack + first;
    const float *bias = (const float *)w->bias + (size_t)block0 * w->lanes;
    (w->lanes == 4 ? depthwise_f32_l4 : depthwise_f32_any)(
        (const float *)tile, tile_cols, stack, bias, blocks, w->taps, kw, stride, relu,
        (float *)out, out_rows, out_cols, w->lanes);
  } else {
    const uint16_t *stack = (const uint16_t *)w->stack + first;
    const uint16_t *bias = (const uint16_t *)w->bias + (size_t)block0 * w->lanes;
    if (out_dtype == SHV_FP32)
      (w->lanes == 8 ? depthwise_f16_l8_out32 : depthwise_f16_any_out32)(
          (const uint16_t *)tile, tile_cols, stack, bias, blocks, w->taps, kw, stride, relu,
          (float *)out, out_rows, out_cols, w->lanes);
    else
      (w->lanes == 8 ? depthwise_f16_l8 : depthwise_f16_any)(
          (const uint16_t *)tile, tile_cols, stack, bias, blocks, w->taps, kw, stride, relu,
          (uint16_t *)out, out_rows, out_cols, w->lanes);
  }
}
