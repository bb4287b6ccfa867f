/* One layer inside the slice: buffer placement, the counted DMA, the tile loops.
 *
 * C form of export/shave/memory.py and of simulator.py's _buffers, _run_conv
 * and _run_rows: the same buffers in the same order and alignment, the same
 * tiles in the same order, the same transfers. */
#include "internal.h"

/* The slice buffers of a layer, in the order planner.buffers lists them. */
enum {
  BUF_WEIGHTS,
  BUF_BIAS,
  BUF_SMALL0, /* + slot: the small map of a fused up-sampling */
  BUF_SUM = BUF_SMALL0 + 2,
  BUF_MEAN,
  BUF_IN0,                               /* + 2 * input + slot */
  BUF_OUT0 = BUF_IN0 + 2 * SHV_MAX_INPUTS, /* + slot */
  BUF_COUNT = BUF_OUT0 + 2
};

typedef struct {
  size_t offset[BUF_COUNT];
  size_t top;
} placement;

/* memory.placement: each buffer at the next aligned offset. */
static void place(placement *p, int id, size_t bytes) {
  p->offset[id] = shv_align_up(p->top);
  p->top = p->offset[id] + bytes;
}

/* TensorFlow's padding along one axis (conv.padding_amounts); 0 if VALID
 * does not fit. */
static int padding_amounts(int size, int kernel, int stride, int dilation, int same, int *before,
                           int *out) {
  int span = (kernel - 1) * dilation + 1;
  if (!same) {
    *before = 0;
    *out = size >= span ? (size - span) / stride + 1 : 0;
    return size >= span;
  }
  *out = (size + stride - 1) / stride;
  int total = (*out - 1) * stride + span - size;
  *before = total > 0 ? total / 2 : 0;
  return 1;
}

/* Output pixels along one axis of the comb field with this residue. */
static int field_size(int out, int residue, int dilation) {
  int n = (out - residue + dilation - 1) / dilation;
  return out > residue ? n : 0;
}

typedef struct {
  int h, w;          /* input the convolution sees (after the fused up-sampling) */
  int top, left;     /* padding */
  int out_h, out_w;  /* output */
  int rows, cols;    /* field (0, 0): the most rows and columns of any field */
  int in_cols;       /* padded input columns of the widest field's tile */
} conv_geometry;

static int conv_geometry_of(const shv_layer *l, conv_geometry *g) {
  g->h = l->in_h[0] * l->upsample;
  g->w = l->in_w[0] * l->upsample;
  if (!padding_amounts(g->h, l->kh, l->stride, l->dilation, l->same_padding, &g->top, &g->out_h) ||
      !padding_amounts(g->w, l->kw, l->stride, l->dilation, l->same_padding, &g->left, &g->out_w))
    return 0;
  g->rows = field_size(g->out_h, 0, l->dilation);
  g->cols = field_size(g->out_w, 0, l->dilation);
  g->in_cols = (g->cols - 1) * l->stride + l->kw;
  return g->rows > 0 && g->cols > 0;
}

static int is_conv(const shv_layer *l) { return l->kind == SHV_CONV || l->kind == SHV_DEPTHWISE; }

static int out_blocks(const shv_layer *l, shv_dtype dtype) {
  return shv_blocks(l->out_c, shv_tensor_lanes(l->out_c, dtype));
}

shv_dtype shv_out_dtype(const shv_layer *l, shv_dtype dtype) {
  return l->out_fp32 ? SHV_FP32 : dtype;
}

/* planner.buffers + memory.placement. */
static void layer_placement(const shv_layer *l, shv_dtype dtype, placement *p) {
  size_t e = shv_elem_bytes(dtype), eo = shv_elem_bytes(shv_out_dtype(l, dtype));
  int rows = l->tile_rows, out_lanes = shv_tensor_lanes(l->out_c, dtype);
  memset(p, 0, sizeof *p);
  if (is_conv(l)) {
    conv_geometry g;
    conv_geometry_of(l, &g);
    const shv_weights *w = &l->weights;
    int in_lanes = shv_tensor_lanes(l->in_c[0], dtype);
    int in_blocks = l->kind == SHV_DEPTHWISE ? l->tile_blocks : shv_blocks(l->in_c[0], in_lanes);
    int tile_rows = (rows - 1) * l->stride + l->kh;
    size_t pixel = (size_t)in_blocks * in_lanes * e;
    place(p, BUF_WEIGHTS, (size_t)w->blocks * w->taps * w->width * w->lanes * e);
    place(p, BUF_BIAS, (size_t)w->blocks * w->lanes * e);
    if (l->upsample > 1) {
      int small_rows = (tile_rows - 1) * l->dilation / l->upsample + 2;
      int small_cols = (g.in_cols - 1) * l->dilation / l->upsample + 2;
      if (small_rows > l->in_h[0]) small_rows = l->in_h[0];
      if (small_cols > l->in_w[0]) small_cols = l->in_w[0];
      for (int slot = 0; slot < 2; ++slot)
        place(p, BUF_SMALL0 + slot, (size_t)small_rows * small_cols * pixel);
    }
    for (int slot = 0; slot < 2; ++slot)
      place(p, BUF_IN0 + slot, (size_t)tile_rows * g.in_cols * pixel);
    for (int slot = 0; slot < 2; ++slot)
      place(p, BUF_OUT0 + slot, (size_t)rows * g.cols * l->tile_blocks * out_lanes * eo);
    return;
  }
  size_t out_vector = (size_t)out_blocks(l, dtype) * out_lanes;
  if (l->kind == SHV_GLOBAL_AVG_POOL) {
    place(p, BUF_SUM, out_vector * sizeof(float));
    place(p, BUF_MEAN, out_vector * e);
  }
  int in_rows = rows;
  if (l->kind == SHV_MAX_POOL) in_rows = rows * l->stride;
  if (l->kind == SHV_RESIZE_NEAREST) in_rows = (rows + l->scale - 1) / l->scale + 1;
  for (int i = 0; i < l->n_inputs; ++i) {
    int lanes = shv_tensor_lanes(l->in_c[i], dtype);
    size_t bytes = (size_t)in_rows * l->in_w[i] * shv_blocks(l->in_c[i], lanes) * lanes * e;
    for (int slot = 0; slot < 2; ++slot) place(p, BUF_IN0 + 2 * i + slot, bytes);
  }
  if (l->kind != SHV_GLOBAL_AVG_POOL)
    for (int slot = 0; slot < 2; ++slot)
      place(p, BUF_OUT0 + slot, (size_t)rows * l->out_w * out_vector * e);
}

size_t shv_layer_slice_bytes(const shv_layer *layer, shv_dtype dtype) {
  placement p;
  layer_placement(layer, dtype, &p);
  return p.top;
}

/* ---- checks ------------------------------------------------------------- */

#define LAYER_FAIL(...) shv_fail(err, err_len, SHV_ERR_ARGUMENT, __VA_ARGS__)

static int check_weights(const shv_layer *l, shv_dtype dtype, char *err, size_t err_len) {
  const shv_weights *w = &l->weights;
  int lanes = shv_tensor_lanes(l->out_c, dtype), width = 1;
  if (l->kind == SHV_CONV)
    width = shv_stack_width(l->in_c[0] / l->groups, l->out_c, l->groups, lanes);
  if (w->blocks != shv_blocks(l->out_c, lanes) || w->taps != l->kh * l->kw ||
      w->width != width || w->lanes != lanes)
    return LAYER_FAIL("layer '%.*s': kernel stack %dx%dx%dx%d, but its descriptor needs "
                      "%dx%dx%dx%d", l->name_len, l->name, w->blocks, w->taps, w->width,
                      w->lanes, shv_blocks(l->out_c, lanes), l->kh * l->kw, width, lanes);
  if (!w->stack || !w->bias || !w->table || !w->counts)
    return LAYER_FAIL("layer '%.*s': missing weights", l->name_len, l->name);
  for (int b = 0; b < w->blocks; ++b) {
    if (w->counts[b] < 1 || w->counts[b] > w->width)
      return LAYER_FAIL("layer '%.*s': block %d reads %d inputs per tap, not 1..%d", l->name_len,
                        l->name, b, w->counts[b], w->width);
    for (int i = 0; i < w->width; ++i)
      if (l->kind == SHV_CONV && w->table[b * w->width + i] >= l->in_c[0])
        return LAYER_FAIL("layer '%.*s': input table names channel %d of %d", l->name_len,
                          l->name, w->table[b * w->width + i], l->in_c[0]);
  }
  return SHV_OK;
}

static int check_shapes(const shv_layer *l, char *err, size_t err_len) {
  int h = l->in_h[0], w = l->in_w[0], c = l->in_c[0], k = l->stride;
  switch (l->kind) {
    case SHV_CONV:
    case SHV_DEPTHWISE: {
      conv_geometry g;
      if (l->kh < 1 || l->kw < 1 || l->stride < 1 || l->dilation < 1 || l->upsample < 1)
        return LAYER_FAIL("layer '%.*s': kernel, stride, dilation and up-sampling must be >= 1",
                          l->name_len, l->name);
      if (l->stride > 1 && l->dilation > 1)
        return LAYER_FAIL("layer '%.*s': strides=%d and dilation=%d cannot both exceed 1",
                          l->name_len, l->name, l->stride, l->dilation);
      if (!conv_geometry_of(l, &g) || g.out_h != l->out_h || g.out_w != l->out_w)
        return LAYER_FAIL("layer '%.*s': output %dx%d, but a %dx%d kernel on %dx%d gives "
                          "%dx%d", l->name_len, l->name, l->out_h, l->out_w, l->kh, l->kw,
                          h * l->upsample, w * l->upsample, g.out_h, g.out_w);
      if (l->kind == SHV_DEPTHWISE ? l->out_c != c
                                   : l->groups < 1 || c % l->groups || l->out_c % l->groups)
        return LAYER_FAIL("layer '%.*s': %d input and %d output channels do not fit %d groups",
                          l->name_len, l->name, c, l->out_c, l->groups);
      return SHV_OK;
    }
    case SHV_ADD:
      for (int i = 0; i < l->n_inputs; ++i)
        if (l->in_h[i] != l->out_h || l->in_w[i] != l->out_w || l->in_c[i] != l->out_c)
          return LAYER_FAIL("layer '%.*s': input %d is %dx%dx%d, the output %dx%dx%d",
                            l->name_len, l->name, i, l->in_h[i], l->in_w[i], l->in_c[i],
                            l->out_h, l->out_w, l->out_c);
      return SHV_OK;
    case SHV_CONCAT: {
      int channels = 0;
      for (int i = 0; i < l->n_inputs; ++i) {
        if (l->in_h[i] != l->out_h || l->in_w[i] != l->out_w)
          return LAYER_FAIL("layer '%.*s': input %d is %dx%d, the output %dx%d", l->name_len,
                            l->name, i, l->in_h[i], l->in_w[i], l->out_h, l->out_w);
        channels += l->in_c[i];
      }
      if (channels != l->out_c)
        return LAYER_FAIL("layer '%.*s': inputs of %d channels, output of %d", l->name_len,
                          l->name, channels, l->out_c);
      return SHV_OK;
    }
    case SHV_RESIZE_NEAREST:
      k = l->scale;
      if (k < 1 || l->out_h != h * k || l->out_w != w * k || l->out_c != c)
        return LAYER_FAIL("layer '%.*s': x%d up-sampling of %dx%dx%d is not %dx%dx%d",
                          l->name_len, l->name, k, h, w, c, l->out_h, l->out_w, l->out_c);
      return SHV_OK;
    case SHV_MAX_POOL:
      if (k < 1 || l->out_h != h / k || l->out_w != w / k || l->out_c != c)
        return LAYER_FAIL("layer '%.*s': %dx%d pooling of %dx%dx%d is not %dx%dx%d",
                          l->name_len, l->name, k, k, h, w, c, l->out_h, l->out_w, l->out_c);
      return SHV_OK;
    case SHV_GLOBAL_AVG_POOL:
      if (l->out_h != 1 || l->out_w != 1 || l->out_c != c)
        return LAYER_FAIL("layer '%.*s': global pooling of %d channels is not 1x1x%d",
                          l->name_len, l->name, c, l->out_c);
      return SHV_OK;
    case SHV_CHANNEL_SHUFFLE:
      if (l->groups < 1 || c % l->groups || l->out_h != h || l->out_w != w || l->out_c != c)
        return LAYER_FAIL("layer '%.*s': a shuffle of %d channels in %d groups", l->name_len,
                          l->name, c, l->groups);
      return SHV_OK;
    default:
      return LAYER_FAIL("layer '%.*s': kind %d is not one of 0..%d", l->name_len, l->name,
                        l->kind, SHV_KIND_COUNT - 1);
  }
}

int shv_check_layer(const shv_layer *l, shv_dtype dtype, char *err, size_t err_len) {
  if (dtype != SHV_FP32 && dtype != SHV_FP16) return LAYER_FAIL("unknown element type %d", dtype);
  if (l->kind < 0 || l->kind >= SHV_KIND_COUNT)
    return LAYER_FAIL("layer '%.*s': kind %d is not one of 0..%d", l->name_len, l->name,
                      l->kind, SHV_KIND_COUNT - 1);
  int single = l->kind != SHV_ADD && l->kind != SHV_CONCAT;
  if (l->n_inputs < 1 || l->n_inputs > SHV_MAX_INPUTS || (single && l->n_inputs != 1))
    return LAYER_FAIL("layer '%.*s': %d inputs", l->name_len, l->name, l->n_inputs);
  for (int i = 0; i < l->n_inputs; ++i)
    if (l->in_h[i] < 1 || l->in_w[i] < 1 || l->in_c[i] < 1)
      return LAYER_FAIL("layer '%.*s': input %d is %dx%dx%d", l->name_len, l->name, i,
                        l->in_h[i], l->in_w[i], l->in_c[i]);
  if (l->out_h < 1 || l->out_w < 1 || l->out_c < 1)
    return LAYER_FAIL("layer '%.*s': output %dx%dx%d", l->name_len, l->name, l->out_h, l->out_w,
                      l->out_c);
  int status = check_shapes(l, err, err_len);
  if (status) return status;
  if (l->out_fp32 && (dtype != SHV_FP16 || !is_conv(l)))
    return LAYER_FAIL("layer '%.*s': only a convolution of an fp16 network stores its output "
                      "in fp32", l->name_len, l->name);
  int all = out_blocks(l, dtype);
  if (l->tile_rows < 1 || l->tile_blocks < 1 || l->tile_blocks > all ||
      (l->kind != SHV_DEPTHWISE && l->tile_blocks != all))
    return LAYER_FAIL("layer '%.*s': tile of %d rows x %d blocks; needs rows >= 1 and %s%d "
                      "blocks", l->name_len, l->name, l->tile_rows, l->tile_blocks,
                      l->kind == SHV_DEPTHWISE ? "1 .. " : "all ", all);
  return is_conv(l) ? check_weights(l, dtype, err, err_len) : SHV_OK;
}

/* ---- the DMA ------------------------------------------------------------ */

void shv_dma_copy(shv_dma *dma, int into_slice, void *dst, ptrdiff_t dst_line,
                  ptrdiff_t dst_chunk, const void *src, ptrdiff_t src_line, ptrdiff_t src_chunk,
                  int lines, int count, size_t chunk, int per_line) {
  size_t bytes = (size_t)lines * count * chunk;
  if (!bytes) return;
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  for (int i = 0; i < lines; ++i) {
    if (dst_chunk == (ptrdiff_t)chunk && src_chunk == (ptrdiff_t)chunk) {
      memcpy(d + i * dst_line, s + i * src_line, (size_t)count * chunk);
      continue;
    }
    for (int j = 0; j < count; ++j)
      memcpy(d + i * dst_line + j * dst_chunk, s + i * src_line + j * src_chunk, chunk);
  }
  dma->transfers += per_line ? (uint64_t)lines : 1u;
  if (into_slice)
    dma->bytes_in += bytes;
  else
    dma->bytes_out += bytes;
}

/* A block of whole rows: one descriptor. */
static void dma_rows(shv_dma *dma, int into_slice, void *dst, const void *src, size_t bytes) {
  shv_dma_copy(dma, into_slice, dst, 0, 0, src, 0, 0, 1, 1, bytes, 0);
}

/* ---- the layer loops ---------------------------------------------------- */

static size_t pixel_bytes(const shv_tensor *t, shv_dtype dtype) {
  return (size_t)t->blocks * t->lanes * shv_elem_bytes(dtype);
}

/* simulator._run_conv: weights in once, then per comb field, block range and
 * row tile: zero the input tile, gather its in-image part (through the small
 * map if up-sampling), compute, scatter the output. */
static void run_conv(const shv_layer *l, shv_dtype dtype, const shv_tensor *in,
                     const shv_tensor *out, uint8_t *slice, const placement *p, shv_dma *dma,
                     shv_layer_stats *stats) {
  const size_t e = shv_elem_bytes(dtype);
  const shv_dtype out_dtype = shv_out_dtype(l, dtype);
  const size_t eo = shv_elem_bytes(out_dtype);
  const int d = l->dilation, s = l->stride, up = l->upsample;
  const int depthwise = l->kind == SHV_DEPTHWISE;
  conv_geometry g;
  conv_geometry_of(l, &g);
  shv_weights w = l->weights;
  uint8_t *stack = slice + p->offset[BUF_WEIGHTS], *bias = slice + p->offset[BUF_BIAS];
  dma_rows(dma, 1, stack, w.stack, (size_t)w.blocks * w.taps * w.width * w.lanes * e);
  dma_rows(dma, 1, bias, w.bias, (size_t)w.blocks * w.lanes * e);
  w.stack = stack;
  w.bias = bias;
  const size_t in_pixel = pixel_bytes(in, dtype), out_pixel = pixel_bytes(out, out_dtype);
  for (int fp = 0; fp < d; ++fp)
    for (int fq = 0; fq < d; ++fq) {
      const int rows = field_size(g.out_h, fp, d), cols = field_size(g.out_w, fq, d);
      if (!rows || !cols) continue;
      const int in_cols = (cols - 1) * s + l->kw;
      /* Input row (col) of tile row i (col j), in the conv's input frame. */
      const int col0 = fq - g.left;
      int j0 = 0, j1 = in_cols - 1;
      while (j0 < in_cols && col0 + d * j0 < 0) ++j0;
      while (j1 >= 0 && col0 + d * j1 >= g.w) --j1;
      for (int b0 = 0; b0 < out->blocks; b0 += l->tile_blocks) {
        const int nb = out->blocks - b0 < l->tile_blocks ? out->blocks - b0 : l->tile_blocks;
        const int in_blocks = depthwise ? nb : in->blocks, in_block0 = depthwise ? b0 : 0;
        const size_t chunk = (size_t)in_blocks * in->lanes * e;
        const size_t out_chunk = (size_t)nb * out->lanes * eo;
        for (int r0 = 0; r0 < rows; r0 += l->tile_rows) {
          const int n = rows - r0 < l->tile_rows ? rows - r0 : l->tile_rows;
          const int slot = (int)(stats->tiles % 2), tile_rows = (n - 1) * s + l->kh;
          const int row0 = fp - g.top + d * r0 * s;
          uint8_t *tile = slice + p->offset[BUF_IN0 + slot];
          memset(tile, 0, (size_t)tile_rows * in_cols * chunk);
          int i0 = 0, i1 = tile_rows - 1;
          while (i0 < tile_rows && row0 + d * i0 < 0) ++i0;
          while (i1 >= 0 && row0 + d * i1 >= g.h) --i1;
          if (i0 <= i1 && j0 <= j1) {
            const int nr = i1 - i0 + 1, nc = j1 - j0 + 1;
            uint8_t *part = tile + ((size_t)i0 * in_cols + j0) * chunk;
            const size_t block_offset = (size_t)in_block0 * in->lanes * e;
            if (up == 1) {
              const uint8_t *src =
                  in->data + ((size_t)(row0 + d * i0) * in->w + col0 + d * j0) * in_pixel +
                  block_offset;
              shv_dma_copy(dma, 1, part, (ptrdiff_t)(in_cols * chunk), (ptrdiff_t)chunk, src,
                           (ptrdiff_t)(d * in->w * in_pixel), (ptrdiff_t)(d * in_pixel), nr, nc,
                           chunk, d > 1);
            } else {
              const int sr0 = (row0 + d * i0) / up, sc0 = (col0 + d * j0) / up;
              const int snr = (row0 + d * i1) / up - sr0 + 1, snc = (col0 + d * j1) / up - sc0 + 1;
              uint8_t *small = slice + p->offset[BUF_SMALL0 + slot];
              shv_dma_copy(dma, 1, small, (ptrdiff_t)(snc * chunk), (ptrdiff_t)chunk,
                           in->data + ((size_t)sr0 * in->w + sc0) * in_pixel + block_offset,
                           (ptrdiff_t)(in->w * in_pixel), (ptrdiff_t)in_pixel, snr, snc, chunk, 0);
              for (int i = i0; i <= i1; ++i)
                for (int j = j0; j <= j1; ++j)
                  memcpy(tile + ((size_t)i * in_cols + j) * chunk,
                         small + ((size_t)((row0 + d * i) / up - sr0) * snc +
                                  (col0 + d * j) / up - sc0) * chunk,
                         chunk);
              stats->expand_vectors += (uint64_t)nr * nc * in_blocks;
            }
          }
          uint8_t *result = slice + p->offset[BUF_OUT0 + slot];
          if (depthwise)
            shv_depthwise_tile(dtype, out_dtype, tile, in_cols, &w, b0, nb, l->kh, l->kw, s,
                               l->relu, result, n, cols);
          else
            shv_conv_tile(dtype, out_dtype, tile, in_cols, in->blocks * in->lanes, &w, b0, nb,
                          l->kh, l->kw, s, l->relu, result, n, cols);
          shv_dma_copy(dma, 0,
                       out->data + ((size_t)(fp + d * r0) * out->w + fq) * out_pixel +
                           (size_t)b0 * out->lanes * eo,
                       (ptrdiff_t)(d * out->w * out_pixel), (ptrdiff_t)(d * out_pixel), result,
                       (ptrdiff_t)(cols * out_chunk), (ptrdiff_t)out_chunk, n, cols, out_chunk,
                       d > 1);
          ++stats->tiles;
        }
      }
    }
}

/* simulator._run_rows: add, concat, channel shuffle, resize, max-pool and
 * global pooling in row tiles without halo. */
static void run_rows(const shv_layer *l, shv_dtype dtype, const shv_tensor *in,
                     const shv_tensor *out, uint8_t *slice, const placement *p, shv_dma *dma,
                     shv_layer_stats *stats) {
  const size_t e = shv_elem_bytes(dtype);
  const int pooled = l->kind == SHV_GLOBAL_AVG_POOL;
  const int k = l->kind == SHV_MAX_POOL ? l->stride : l->scale;
  const int max_rows = pooled ? in[0].h : l->out_h;
  const size_t out_vector = (size_t)out->blocks * out->lanes, out_row = out_vector * out->w * e;
  float *sum = pooled ? (float *)(void *)(slice + p->offset[BUF_SUM]) : NULL;
  if (pooled) memset(sum, 0, out_vector * sizeof *sum);
  for (int r0 = 0; r0 < max_rows; r0 += l->tile_rows) {
    const int r1 = r0 + l->tile_rows < max_rows ? r0 + l->tile_rows : max_rows, nr = r1 - r0;
    const int slot = (int)(stats->tiles % 2);
    int a = r0, b = r1; /* input rows the tile needs */
    if (l->kind == SHV_RESIZE_NEAREST) a = r0 / k, b = (r1 - 1) / k + 1;
    if (l->kind == SHV_MAX_POOL) a = r0 * k, b = r1 * k;
    const uint8_t *tiles[SHV_MAX_INPUTS];
    for (int i = 0; i < l->n_inputs; ++i) {
      size_t row = pixel_bytes(&in[i], dtype) * in[i].w;
      uint8_t *buffer = slice + p->offset[BUF_IN0 + 2 * i + slot];
      dma_rows(dma, 1, buffer, in[i].data + (size_t)a * row, (size_t)(b - a) * row);
      tiles[i] = buffer;
    }
    uint8_t *o = pooled ? NULL : slice + p->offset[BUF_OUT0 + slot];
    const size_t pixels = (size_t)nr * l->out_w;
    switch (l->kind) {
      case SHV_ADD:
        for (size_t i = 0; i < pixels * out_vector; ++i) {
          float v = 0.f;
          for (int t = 0; t < l->n_inputs; ++t) v += shv_load(dtype, tiles[t], i);
          shv_store(dtype, o, i, l->relu && v < 0.f ? 0.f : v);
        }
        break;
      case SHV_CONCAT:
        memset(o, 0, pixels * out_vector * e);
        for (size_t px = 0; px < pixels; ++px) {
          size_t at = 0;
          for (int t = 0; t < l->n_inputs; ++t) {
            size_t vector = (size_t)in[t].blocks * in[t].lanes;
            memcpy(o + (px * out_vector + at) * e, tiles[t] + px * vector * e, (size_t)in[t].c * e);
            at += (size_t)in[t].c;
          }
        }
        break;
      case SHV_CHANNEL_SHUFFLE: {
        const int c = l->out_c, per_group = c / l->groups;
        memset(o, 0, pixels * out_vector * e);
        for (int ch = 0; ch < c; ++ch) { /* channel g * C/G + i -> i * G + g */
          const size_t from = (size_t)(ch % l->groups) * per_group + ch / l->groups;
          if (dtype == SHV_FP16)
            for (size_t px = 0; px < pixels; ++px)
              ((uint16_t *)(void *)o)[px * out_vector + ch] =
                  ((const uint16_t *)(const void *)tiles[0])[px * out_vector + from];
          else
            for (size_t px = 0; px < pixels; ++px)
              ((float *)(void *)o)[px * out_vector + ch] =
                  ((const float *)(const void *)tiles[0])[px * out_vector + from];
        }
        break;
      }
      case SHV_RESIZE_NEAREST:
        for (int r = r0; r < r1; ++r)
          for (int x = 0; x < l->out_w; ++x)
            memcpy(o + ((size_t)(r - r0) * l->out_w + x) * out_vector * e,
                   tiles[0] + ((size_t)(r / k - a) * in[0].w + x / k) * out_vector * e,
                   out_vector * e);
        break;
      case SHV_MAX_POOL:
        for (int y = 0; y < nr; ++y)
          for (int x = 0; x < l->out_w; ++x)
            for (size_t v = 0; v < out_vector; ++v) {
              const size_t corner = ((size_t)y * k * in[0].w + (size_t)x * k) * out_vector + v;
              float best = shv_load(dtype, tiles[0], corner);
              for (int dy = 0; dy < k; ++dy)
                for (int dx = 0; dx < k; ++dx) {
                  float x1 = shv_load(dtype, tiles[0],
                                      corner + ((size_t)dy * in[0].w + dx) * out_vector);
                  if (x1 > best) best = x1;
                }
              shv_store(dtype, o, ((size_t)y * l->out_w + x) * out_vector + v, best);
            }
        break;
      default: /* global pooling: accumulate the tile's pixels */
        for (size_t px = 0; px < (size_t)nr * in[0].w; ++px)
          for (size_t v = 0; v < out_vector; ++v)
            sum[v] += shv_load(dtype, tiles[0], px * out_vector + v);
    }
    if (!pooled) dma_rows(dma, 0, out->data + (size_t)r0 * out_row, o, (size_t)nr * out_row);
    ++stats->tiles;
  }
  if (pooled) {
    uint8_t *mean = slice + p->offset[BUF_MEAN];
    const float count = (float)((size_t)in[0].h * in[0].w);
    for (size_t v = 0; v < out_vector; ++v) shv_store(dtype, mean, v, sum[v] / count);
    dma_rows(dma, 0, out->data, mean, out_vector * e);
  }
}

static int same_tensor(const shv_tensor *t, int h, int w, int c, shv_dtype dtype) {
  int lanes = shv_tensor_lanes(c, dtype);
  return t->data && t->h == h && t->w == w && t->c == c && t->lanes == lanes &&
         t->blocks == shv_blocks(c, lanes);
}

int shv_run_layer(const shv_layer *l, shv_dtype dtype, const shv_tensor *inputs,
                  const shv_tensor *output, uint8_t *slice, size_t slice_bytes,
                  shv_layer_stats *stats, char *err, size_t err_len) {
  if (!slice || (uintptr_t)slice % SHV_ALIGN || slice_bytes > SHV_SLICE_BYTES)
    return LAYER_FAIL("the slice must be %u-byte aligned and at most %u bytes, not %zu bytes at "
                      "%p", SHV_ALIGN, SHV_SLICE_BYTES, slice_bytes, (void *)slice);
  for (int i = 0; i < l->n_inputs; ++i)
    if (!same_tensor(&inputs[i], l->in_h[i], l->in_w[i], l->in_c[i], dtype))
      return LAYER_FAIL("layer '%.*s': input %d is not an interleaved %dx%dx%d tensor",
                        l->name_len, l->name, i, l->in_h[i], l->in_w[i], l->in_c[i]);
  if (!same_tensor(output, l->out_h, l->out_w, l->out_c, dtype))
    return LAYER_FAIL("layer '%.*s': the output is not an interleaved %dx%dx%d tensor",
                      l->name_len, l->name, l->out_h, l->out_w, l->out_c);
  placement p;
  layer_placement(l, dtype, &p);
  if (p.top > slice_bytes)
    return shv_fail(err, err_len, SHV_ERR_SLICE,
                    "layer '%.*s' needs %zu bytes of slice memory but the slice holds %zu bytes "
                    "with tiles of %d rows x %d blocks", l->name_len, l->name, p.top, slice_bytes,
                    l->tile_rows, l->tile_blocks);
  shv_layer_stats local;
  memset(&local, 0, sizeof local);
  shv_dma dma = {0, 0, 0};
  if (is_conv(l))
    run_conv(l, dtype, &inputs[0], output, slice, &p, &dma, &local);
  else
    run_rows(l, dtype, inputs, output, slice, &p, &dma, &local);
  local.peak_bytes = p.top;
  local.dma_transfers = dma.transfers;
  local.dma_in_bytes = dma.bytes_in;
  local.dma_out_bytes = dma.bytes_out;
  if (stats) *stats = local;
  return SHV_OK;
}
