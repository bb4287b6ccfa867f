/* The SHAVE kernel in portable C99: interleaved layout, comb dilation, 128 KB slice.
 *
 * The C form of the numpy reference in export/shave/ (layout.py, conv.py,
 * comb.py, memory.py, simulator.py; docs/embedded.md), paper Section 3
 * "Embedded Implementation". No dependencies beyond the C library, no
 * allocation: every buffer is the caller's.
 *
 *   - Activations are channel-interleaved, [H][W][CB][L]: L lanes of a
 *     128-bit vector (8 fp16 or 4 fp32; 1 for a single-channel tensor),
 *     channel c at block c / L, lane c % L, i.e. at element c of its pixel.
 *   - A convolution runs on the reordered kernel stack [OB][T][N][L]: per
 *     output block, tap and input channel of the block's input set, the L
 *     filters' weights side by side; each is one scalar-broadcast vector MAC.
 *     Bias is the accumulator's start value, ReLU one max before the store.
 *   - A dilated convolution runs as d x d undilated comb fields: the DMA
 *     gathers a field's pixels with a stride of d and scatters its outputs
 *     back with a stride of d.
 *   - A layer runs only inside the caller's working buffer (the slice, at
 *     most SHV_SLICE_BYTES), in row tiles moved to and from the tensors in
 *     "DDR" by shv_dma_copy, which counts descriptors and bytes. The buffers
 *     are placed exactly as simulator.py places them, so the peak slice use
 *     and the DMA bytes equal the simulator's.
 *
 * Storage is fp32 or fp16 (IEEE binary16 bit patterns in uint16_t),
 * accumulation always fp32, rounding to nearest even on store. An fp16
 * network's outputs (the convolutions no layer reads: planner.fp32_stored)
 * are stored unrounded, in fp32 with the fp16 layout's 8 lanes. fp16 uses the
 * compiler's _Float16 where it has one (gcc and clang on x86-64 and ARM) and
 * a bit-exact software conversion elsewhere (or with -DSHV_SOFT_FP16).
 */
#ifndef HAND25D_SHAVE_KERNEL_H_
#define HAND25D_SHAVE_KERNEL_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHV_SLICE_BYTES 131072u /* one SHAVE's slice of CMX on a Myriad2 */
#define SHV_ALIGN 16u           /* buffer alignment in the slice and in DDR */
#define SHV_MAX_LANES 8
#define SHV_MAX_INPUTS 8        /* inputs of one layer (add, concat) */

typedef enum { SHV_FP32 = 0, SHV_FP16 = 1 } shv_dtype;

/* Layer kinds: the values are the blob's kind codes, the order of
 * export/shave/graph.py KINDS. */
typedef enum {
  SHV_CONV = 0,
  SHV_DEPTHWISE = 1,
  SHV_ADD = 2,
  SHV_CONCAT = 3,
  SHV_RESIZE_NEAREST = 4,
  SHV_MAX_POOL = 5,
  SHV_GLOBAL_AVG_POOL = 6,
  SHV_CHANNEL_SHUFFLE = 7,
  SHV_KIND_COUNT = 8
} shv_kind;

/* Status codes; a failing call also writes a message into `err`. */
enum { SHV_OK = 0, SHV_ERR_ARGUMENT = 1, SHV_ERR_BLOB = 2, SHV_ERR_SLICE = 3 };

/* ---- element types ------------------------------------------------------ */

float shv_half_to_float_soft(uint16_t h);
uint16_t shv_float_to_half_soft(float f);

#if defined(__FLT16_MAX__) && !defined(SHV_SOFT_FP16) && !defined(__cplusplus)
#define SHV_NATIVE_FP16 1
__extension__ typedef _Float16 shv_native_half;
static inline float shv_h2f(uint16_t h) {
  shv_native_half v;
  memcpy(&v, &h, sizeof v);
  return (float)v;
}
static inline uint16_t shv_f2h(float f) {
  shv_native_half v = (shv_native_half)f;
  uint16_t h;
  memcpy(&h, &v, sizeof h);
  return h;
}
#else
#define SHV_NATIVE_FP16 0
static inline float shv_h2f(uint16_t h) { return shv_half_to_float_soft(h); }
static inline uint16_t shv_f2h(float f) { return shv_float_to_half_soft(f); }
#endif

/* 1 if this build converts fp16 with the compiler's _Float16. */
int shv_native_fp16(void);
size_t shv_elem_bytes(shv_dtype dtype);
/* Lanes of a 128-bit vector: 4 (fp32) or 8 (fp16). */
int shv_lanes(shv_dtype dtype);
/* Lanes a tensor of `channels` channels is stored with: 1 for one channel. */
int shv_tensor_lanes(int channels, shv_dtype dtype);
int shv_blocks(int channels, int lanes);

/* ---- tensors and weights ------------------------------------------------ */

/* An interleaved tensor [h][w][blocks][lanes], contiguous ("DDR"). */
typedef struct {
  uint8_t *data;
  int h, w, c, blocks, lanes;
} shv_tensor;

/* Bytes of an interleaved tensor of shape (h, w, c). */
size_t shv_tensor_bytes(int h, int w, int c, shv_dtype dtype);
/* [h][w][c] float32 -> interleaved `dtype` (padding lanes zero), and back. */
void shv_interleave(shv_dtype dtype, const float *src, int h, int w, int c, void *dst);
void shv_deinterleave(shv_dtype dtype, const void *src, int h, int w, int c, float *dst);

/* A reordered kernel stack (layout.KernelStack). `table` and `counts` are read
 * in place (on the SHAVE they are folded into the unrolled loop's
 * addressing); `stack` and `bias` are copied into the slice by the DMA. */
typedef struct {
  const void *stack;      /* [blocks][taps][width][lanes], storage type */
  const void *bias;       /* [blocks][lanes], storage type */
  const uint16_t *table;  /* [blocks][width]: input channel of each stack row */
  const uint16_t *counts; /* [blocks]: dot-product length per tap */
  int blocks, taps, width, lanes;
} shv_weights;

/* Width N of the stack of a (grouped) convolution: the largest input set of
 * an output block (layout.block_input_sets). 0 if cout % groups != 0. */
int shv_stack_width(int in_per_group, int cout, int groups, int lanes);
/* layout.reorder_kernel: kernel [kh][kw][cin/groups][cout] float32 (TF order)
 * and bias [cout] into stack/bias (storage type), table and counts, with
 * blocks = ceil(cout / lanes), width = shv_stack_width(...). */
void shv_reorder_kernel(shv_dtype dtype, const float *kernel, const float *bias, int kh, int kw,
                        int in_per_group, int cout, int groups, int lanes, void *stack,
                        void *stack_bias, uint16_t *table, uint16_t *counts);
/* layout.reorder_depthwise: kernel [kh][kw][c][1] -> stack [blocks][taps][1][lanes]. */
void shv_reorder_depthwise(shv_dtype dtype, const float *kernel, const float *bias, int kh,
                           int kw, int channels, int lanes, void *stack, void *stack_bias,
                           uint16_t *table, uint16_t *counts);

/* ---- tile kernels (operands in the slice, contiguous) ------------------- */

/* Dense/grouped VALID, undilated convolution of a padded interleaved tile
 * [tile_rows][tile_cols][tile_pixel elements] into output blocks
 * [out_rows][out_cols][blocks][w->lanes], for output blocks block0 ..
 * block0 + blocks - 1 of `w` (conv.conv_tile). Four adjacent output pixels
 * share each weight-vector load. The tile and weights are `dtype`, the
 * output `out_dtype` (the same, or fp32 for an fp16 tile). */
void shv_conv_tile(shv_dtype dtype, shv_dtype out_dtype, const void *tile, int tile_cols,
                   int tile_pixel, const shv_weights *w, int block0, int blocks, int kh, int kw,
                   int stride, int relu, void *out, int out_rows, int out_cols);
/* Depthwise VALID, undilated convolution, lane by lane (conv.depthwise_tile):
 * tile [rows][tile_cols][blocks][lanes] holds channel blocks block0 ..
 * block0 + blocks - 1, as does the output; types as for shv_conv_tile. */
void shv_depthwise_tile(shv_dtype dtype, shv_dtype out_dtype, const void *tile, int tile_cols,
                        const shv_weights *w, int block0, int blocks, int kh, int kw, int stride,
                        int relu, void *out, int out_rows, int out_cols);

/* ---- the DMA ------------------------------------------------------------ */

typedef struct {
  uint64_t transfers, bytes_in, bytes_out;
} shv_dma;

/* One 2-D transfer: `lines` lines of `count` chunks of `chunk` bytes, each
 * side with its own line and chunk pitch. Counts one descriptor, or one per
 * line when `per_line` (a gather or scatter with a pixel stride), and the
 * bytes into (`into_slice`) or out of the slice. Nothing for zero bytes. */
void shv_dma_copy(shv_dma *dma, int into_slice, void *dst, ptrdiff_t dst_line,
                  ptrdiff_t dst_chunk, const void *src, ptrdiff_t src_line, ptrdiff_t src_chunk,
                  int lines, int count, size_t chunk, int per_line);

/* ---- one layer in the slice --------------------------------------------- */

/* A layer (graph.Layer) with its tile (planner.Tile) and weights. */
typedef struct {
  const char *name; /* not NUL-terminated; name_len bytes */
  int name_len;
  int kind;         /* shv_kind */
  int relu, same_padding;
  int kh, kw, stride, dilation, groups, scale, upsample;
  int n_inputs;
  int inputs[SHV_MAX_INPUTS]; /* network tensor indices (shv_net); unused alone */
  int in_h[SHV_MAX_INPUTS], in_w[SHV_MAX_INPUTS], in_c[SHV_MAX_INPUTS];
  int out_h, out_w, out_c;
  int tile_rows, tile_blocks;
  int out_fp32;        /* output stored in fp32 though the net is fp16 (blob flag bit 2) */
  shv_weights weights; /* conv and depthwise only */
} shv_layer;

/* The type a layer's output is stored in: fp32 if out_fp32, else `dtype`. */
shv_dtype shv_out_dtype(const shv_layer *layer, shv_dtype dtype);

/* What one layer did (simulator.LayerReport). */
typedef struct {
  uint64_t peak_bytes; /* slice bytes of the layer's buffers */
  uint64_t tiles;
  uint64_t dma_transfers, dma_in_bytes, dma_out_bytes;
  uint64_t expand_vectors; /* vectors written up-sampling fused input */
} shv_layer_stats;

/* Checks a layer's shapes, tile and weights against each other (what makes
 * shv_run_layer safe to run); on failure writes why into err. */
int shv_check_layer(const shv_layer *layer, shv_dtype dtype, char *err, size_t err_len);
/* Slice bytes of the layer's buffers (planner.buffers, memory.placement). */
size_t shv_layer_slice_bytes(const shv_layer *layer, shv_dtype dtype);
/* Runs a checked layer: inputs and output in DDR, every tile through
 * `slice` (16-byte aligned, slice_bytes <= SHV_SLICE_BYTES). Fails with
 * SHV_ERR_SLICE if the buffers do not fit. stats may be NULL. */
int shv_run_layer(const shv_layer *layer, shv_dtype dtype, const shv_tensor *inputs,
                  const shv_tensor *output, uint8_t *slice, size_t slice_bytes,
                  shv_layer_stats *stats, char *err, size_t err_len);

/* ---- a network from a SHAVE blob (export/shave/blob.py, version 2) ------- */

#define SHV_BLOB_VERSION 2
#define SHV_MAX_LAYERS 256
#define SHV_MAX_OUTPUTS 8
#define SHV_MAX_RANK 4

typedef struct {
  shv_dtype dtype;
  uint32_t capacity; /* slice bytes the blob's schedule is planned for */
  int n_layers, n_outputs;
  int in_h, in_w, in_c;
  shv_layer layers[SHV_MAX_LAYERS]; /* weights point into the blob */
  /* Tensor t: 0 the network input, i + 1 the output of layer i. */
  size_t tensor_offset[SHV_MAX_LAYERS + 1];
  size_t ddr_bytes;
  struct {
    const char *name;
    int name_len, layer, rank;
    int shape[SHV_MAX_RANK];
  } outputs[SHV_MAX_OUTPUTS];
} shv_net;

size_t shv_net_struct_bytes(void);
/* Parses and checks a blob (magic, version, length, CRC-32, every record,
 * each tile against the blob's slice). The net points into `blob`, which
 * must outlive it. */
int shv_net_parse(shv_net *net, const uint8_t *blob, size_t blob_bytes, char *err,
                  size_t err_len);
/* Bytes of DDR the network's tensors take (all kept, each 16-byte aligned). */
size_t shv_net_ddr_bytes(const shv_net *net);
/* The interleaved tensor t (0: input, i + 1: layer i) inside `ddr`. */
shv_tensor shv_net_tensor(const shv_net *net, uint8_t *ddr, int t);
/* Writes the [H][W][C] float32 image into the input tensor. */
void shv_net_set_input(const shv_net *net, uint8_t *ddr, const float *image);
/* Runs layer `index` (its inputs must have been computed). */
int shv_net_run_layer(const shv_net *net, int index, uint8_t *slice, size_t slice_bytes,
                      uint8_t *ddr, size_t ddr_bytes, shv_layer_stats *stats, char *err,
                      size_t err_len);
/* Runs every layer; per-layer stats (n_layers entries) and totals (peak:
 * the maximum; the rest: sums) may be NULL. */
int shv_net_run(const shv_net *net, uint8_t *slice, size_t slice_bytes, uint8_t *ddr,
                size_t ddr_bytes, shv_layer_stats *per_layer, shv_layer_stats *total,
                char *err, size_t err_len);
/* Output k as float32 in its layer's [H][W][C] order; count must equal the
 * product of the output's shape. */
int shv_net_output(const shv_net *net, const uint8_t *ddr, int k, float *dst, size_t count,
                   char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* HAND25D_SHAVE_KERNEL_H_ */
