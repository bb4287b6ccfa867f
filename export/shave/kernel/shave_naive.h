/* The baseline: a naive channel-planar im2col + GEMM, in the same C.
 *
 * What export/shave/cost.py prices as "naive" (docs/embedded.md, "The cost
 * model"), written plainly so that benchmarks/shave_kernel_bench.py can time
 * it beside the interleaved kernel, built the same way: tensors planar
 * [C][H][W] in the storage type; a convolution copies every patch (padding
 * included) into an im2col matrix [N][K'] per group (N output pixels,
 * K = kh*kw*cin/groups zero-padded to K', a multiple of the lanes) and
 * computes each output as a K'-long dot product vectorised along K (L
 * partial sums, then a horizontal sum), plus bias and ReLU. A depthwise
 * convolution is the case groups = C (K = kh*kw). Dilation is read by the
 * im2col directly; zero-inflating the kernel instead (cost.py's
 * naive_inflates_dilation) is a dilation-1 call with the inflated kernel.
 * No slice, no DMA: everything is in "DDR".
 */
#ifndef HAND25D_SHAVE_NAIVE_H_
#define HAND25D_SHAVE_NAIVE_H_

#include "shave_kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* K' for a patch of k values: k rounded up to a multiple of the lanes. */
int shv_naive_patch(int k, shv_dtype dtype);

/* weights [cout][K'] (K' = shv_naive_patch(kh*kw*cin/groups), patch order
 * (input channel, row, column), zero past K), bias [cout], in [cin][h][w],
 * out [cout][out_h][out_w], columns: scratch of out_h*out_w*K' elements. */
void shv_naive_conv(shv_dtype dtype, const void *in, int cin, int h, int w, const void *weights,
                    const void *bias, int cout, int groups, int kh, int kw, int stride,
                    int dilation, int pad_top, int pad_left, int out_h, int out_w, int relu,
                    void *columns, void *out);
/* Element-wise sum of n planar tensors of `count` values, optional ReLU. */
void shv_naive_add(shv_dtype dtype, const void *const *inputs, int n, size_t count, int relu,
                   void *out);
/* Channel concatenation: input i holds channels[i] planes of `plane` values. */
void shv_naive_concat(shv_dtype dtype, const void *const *inputs, const int *channels, int n,
                      size_t plane, void *out);
/* Output plane i * groups + g is input plane g * (c / groups) + i. */
void shv_naive_shuffle(shv_dtype dtype, const void *in, int c, int groups, size_t plane,
                       void *out);
void shv_naive_resize(shv_dtype dtype, const void *in, int c, int h, int w, int scale, void *out);
/* k x k VALID max pooling with stride k. */
void shv_naive_max_pool(shv_dtype dtype, const void *in, int c, int h, int w, int k, void *out);
void shv_naive_global_avg_pool(shv_dtype dtype, const void *in, int c, int h, int w, void *out);

#ifdef __cplusplus
}
#endif

#endif /* HAND25D_SHAVE_NAIVE_H_ */
