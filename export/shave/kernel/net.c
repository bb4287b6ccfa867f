/* A network from a SHAVE deployment blob (export/shave/blob.py, format version
 * 1; docs/embedded.md "The deployment blob"), run layer by layer in the slice.
 *
 * The blob carries everything: the layer descriptors, each layer's tile (the
 * schedule planner.plan chose for the blob's slice size) and the kernel
 * stacks in the storage type. The parser checks what blob.read_blob checks
 * and, because C has no bounds checks, every shape against the others. */
#include "internal.h"

#define HEADER_BYTES 32
#define DESCRIPTOR_BYTES 72

static const uint8_t MAGIC[8] = {'H', '2', '5', 'S', 'H', 'A', 'V', 'E'};

static uint32_t crc32_of(const uint8_t *data, size_t n) { /* zlib.crc32 */
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static uint32_t u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

typedef struct {
  const uint8_t *data;
  size_t offset, end;
  char *err;
  size_t err_len;
} reader;

#define BLOB_FAIL(...) shv_fail(r->err, r->err_len, SHV_ERR_BLOB, "SHAVE blob: " __VA_ARGS__)

static int take(reader *r, size_t n, const uint8_t **p, const char *what) {
  if (n > r->end - r->offset)
    return BLOB_FAIL("%s at byte %zu runs past the end of the layer data (%zu bytes)", what,
                     r->offset, r->end);
  *p = r->data + r->offset;
  r->offset += n;
  return SHV_OK;
}

static int take_u32(reader *r, uint32_t *v, const char *what) {
  const uint8_t *p = NULL;
  int status = take(r, 4, &p, what);
  if (!status) *v = u32(p);
  return status;
}

static int take_string(reader *r, const char **s, int *len, const char *what) {
  const uint8_t *p = NULL;
  int status = take(r, 2, &p, what);
  if (status) return status;
  *len = u16(p);
  status = take(r, (size_t)*len, &p, what);
  *s = (const char *)p;
  return status;
}

static void align(reader *r) { r->offset = shv_align_up(r->offset); }

static int take_array(reader *r, size_t bytes, const void **p, const char *what) {
  const uint8_t *q = NULL;
  int status = take(r, bytes, &q, what);
  align(r);
  *p = q;
  return status;
}

/* Little-endian u16 arrays: the blob's byte order; this C assumes the
 * machine's is the same (checked once in shv_net_parse). */
static int little_endian(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

static int read_layer(reader *r, shv_net *net, int position) {
  const uint8_t *d = NULL;
  shv_layer *l = &net->layers[position];
  size_t start = r->offset, e = shv_elem_bytes(net->dtype);
  memset(l, 0, sizeof *l);
  int status = take(r, DESCRIPTOR_BYTES, &d, "layer descriptor");
  if (status) return status;
  uint32_t record = u32(d), f[16];
  for (int i = 0; i < 16; ++i) f[i] = u32(d + 8 + 4 * i);
  for (int i = 0; i < 16; ++i)
    if (f[i] > 1u << 20)
      return BLOB_FAIL("layer %d: descriptor field %d is %u", position, i, f[i]);
  l->kind = d[4];
  l->relu = d[5] & 1;
  l->same_padding = (d[5] >> 1) & 1;
  l->out_fp32 = (d[5] >> 2) & 1;
  l->n_inputs = d[6];
  l->kh = (int)f[0], l->kw = (int)f[1], l->stride = (int)f[2], l->dilation = (int)f[3];
  l->groups = (int)f[4], l->scale = (int)f[5], l->upsample = (int)f[6];
  l->out_h = (int)f[7], l->out_w = (int)f[8], l->out_c = (int)f[9];
  l->tile_rows = (int)f[10], l->tile_blocks = (int)f[11];
  if (l->kind >= SHV_KIND_COUNT)
    return BLOB_FAIL("layer %d: kind %d is not one of 0..%d", position, l->kind,
                     SHV_KIND_COUNT - 1);
  if (l->n_inputs < 1 || l->n_inputs > SHV_MAX_INPUTS)
    return BLOB_FAIL("layer %d: %d inputs; this runner takes 1..%d", position, l->n_inputs,
                     SHV_MAX_INPUTS);
  for (int i = 0; i < l->n_inputs; ++i) {
    uint32_t source;
    if ((status = take_u32(r, &source, "layer inputs"))) return status;
    int s = (int32_t)source;
    if (s < -1 || s >= position)
      return BLOB_FAIL("layer %d: input %d must name the network input (-1) or an earlier "
                       "layer (0..%d)", position, s, position - 1);
    if (s >= 0 && net->layers[s].out_fp32)
      return BLOB_FAIL("layer %d reads layer '%.*s', whose output is stored in fp32: only "
                       "outputs no layer reads are", position, net->layers[s].name_len,
                       net->layers[s].name);
    l->inputs[i] = s + 1;
    l->in_h[i] = s < 0 ? net->in_h : net->layers[s].out_h;
    l->in_w[i] = s < 0 ? net->in_w : net->layers[s].out_w;
    l->in_c[i] = s < 0 ? net->in_c : net->layers[s].out_c;
  }
  if ((status = take_string(r, &l->name, &l->name_len, "layer name"))) return status;
  align(r);
  int weighted = l->kind == SHV_CONV || l->kind == SHV_DEPTHWISE;
  shv_weights *w = &l->weights;
  w->blocks = (int)f[12], w->taps = (int)f[13], w->width = (int)f[14], w->lanes = (int)f[15];
  if (weighted) {
    size_t blocks = (size_t)w->blocks, rows = blocks * w->width;
    const void *p = NULL;
    if ((status = take_array(r, blocks * 2, &p, "counts"))) return status;
    w->counts = (const uint16_t *)p;
    if ((status = take_array(r, rows * 2, &p, "input table"))) return status;
    w->table = (const uint16_t *)p;
    if ((status = take_array(r, rows * w->taps * w->lanes * e, &w->stack, "kernel stack")))
      return status;
    if ((status = take_array(r, blocks * w->lanes * e, &w->bias, "bias"))) return status;
  } else if (w->blocks || w->taps || w->width || w->lanes) {
    return BLOB_FAIL("layer '%.*s' (kind %d) has a kernel stack", l->name_len, l->name, l->kind);
  }
  if (r->offset - start != record)
    return BLOB_FAIL("layer '%.*s': record of %zu bytes, its descriptor says %u", l->name_len,
                     l->name, r->offset - start, record);
  return SHV_OK;
}

int shv_net_parse(shv_net *net, const uint8_t *blob, size_t n, char *err, size_t err_len) {
  reader reader_ = {blob, HEADER_BYTES, 0, err, err_len}, *r = &reader_;
  memset(net, 0, sizeof *net);
  if (!little_endian()) return BLOB_FAIL("this runner reads blobs on little-endian machines only");
  if (n < HEADER_BYTES + 4)
    return BLOB_FAIL("truncated: %zu bytes, shorter than the %d-byte header and checksum", n,
                     HEADER_BYTES);
  if (memcmp(blob, MAGIC, sizeof MAGIC))
    return BLOB_FAIL("not a SHAVE deployment blob (bad magic)");
  int version = u16(blob + 8), bits = u16(blob + 10);
  if (version != SHV_BLOB_VERSION)
    return BLOB_FAIL("format version %d; this runner reads version %d: write the blob again "
                     "with export/shave/blob.py of the same version", version, SHV_BLOB_VERSION);
  uint32_t layers = u32(blob + 12), total = u32(blob + 20);
  net->capacity = u32(blob + 16);
  if (total != n)
    return BLOB_FAIL("the header declares %u bytes, the buffer has %zu", total, n);
  uint32_t stored = u32(blob + n - 4), computed = crc32_of(blob, n - 4);
  if (stored != computed)
    return BLOB_FAIL("checksum mismatch (stored 0x%08x, computed 0x%08x): the blob is corrupt",
                     stored, computed);
  if (bits != 16 && bits != 32)
    return BLOB_FAIL("element type of %d bits; expected 16 (fp16) or 32 (fp32)", bits);
  net->dtype = bits == 16 ? SHV_FP16 : SHV_FP32;
  if (layers < 1 || layers > SHV_MAX_LAYERS)
    return BLOB_FAIL("%u layers; this runner takes 1..%d", layers, SHV_MAX_LAYERS);
  if (net->capacity > SHV_SLICE_BYTES)
    return BLOB_FAIL("planned for a slice of %u bytes, more than the %u of a SHAVE",
                     net->capacity, SHV_SLICE_BYTES);
  r->end = n - 4;
  const char *name;
  int name_len, status;
  uint32_t shape[3], outputs;
  if ((status = take_string(r, &name, &name_len, "input name"))) return status;
  for (int i = 0; i < 3; ++i)
    if ((status = take_u32(r, &shape[i], "input shape"))) return status;
  if (!shape[0] || !shape[1] || !shape[2] || shape[0] > 1u << 20 || shape[1] > 1u << 20 ||
      shape[2] > 1u << 20)
    return BLOB_FAIL("input shape %ux%ux%u", shape[0], shape[1], shape[2]);
  net->in_h = (int)shape[0], net->in_w = (int)shape[1], net->in_c = (int)shape[2];
  if ((status = take_u32(r, &outputs, "output count"))) return status;
  if (outputs < 1 || outputs > SHV_MAX_OUTPUTS)
    return BLOB_FAIL("%u outputs; this runner takes 1..%d", outputs, SHV_MAX_OUTPUTS);
  net->n_outputs = (int)outputs;
  for (int k = 0; k < net->n_outputs; ++k) {
    uint32_t layer, rank;
    if ((status = take_string(r, &net->outputs[k].name, &net->outputs[k].name_len, "output")) ||
        (status = take_u32(r, &layer, "output layer")) || (status = take_u32(r, &rank, "rank")))
      return status;
    if (layer >= layers || rank < 1 || rank > SHV_MAX_RANK)
      return BLOB_FAIL("output %d: layer %u of %u, rank %u", k, layer, layers, rank);
    net->outputs[k].layer = (int)layer;
    net->outputs[k].rank = (int)rank;
    for (uint32_t i = 0; i < rank; ++i) {
      uint32_t dim;
      if ((status = take_u32(r, &dim, "output shape"))) return status;
      net->outputs[k].shape[i] = (int)dim;
    }
  }
  align(r);
  net->n_layers = (int)layers;
  for (int i = 0; i < net->n_layers; ++i) {
    if ((status = read_layer(r, net, i))) return status;
    const shv_layer *l = &net->layers[i];
    if ((status = shv_check_layer(l, net->dtype, err, err_len))) return SHV_ERR_BLOB;
    size_t needed = shv_layer_slice_bytes(l, net->dtype);
    if (needed > net->capacity)
      return BLOB_FAIL("schedule: layer '%.*s' needs %zu bytes of slice memory but the slice "
                       "holds %u bytes with tiles of %d rows x %d blocks", l->name_len, l->name,
                       needed, net->capacity, l->tile_rows, l->tile_blocks);
  }
  if (r->offset != r->end)
    return BLOB_FAIL("%zu bytes after the %d layers the header declares", r->end - r->offset,
                     net->n_layers);
  for (int k = 0; k < net->n_outputs; ++k) {
    const shv_layer *l = &net->layers[net->outputs[k].layer];
    size_t count = 1;
    for (int i = 0; i < net->outputs[k].rank; ++i) count *= (size_t)net->outputs[k].shape[i];
    if (count != (size_t)l->out_h * l->out_w * l->out_c)
      return BLOB_FAIL("output %d has %zu values, its layer '%.*s' %dx%dx%d", k, count,
                       l->name_len, l->name, l->out_h, l->out_w, l->out_c);
  }
  /* The layers flagged as stored in fp32: exactly the convolutions whose output
   * is a network output that no layer reads (planner.fp32_stored), or none. */
  int flagged = 0, expected = 0, differ = -1;
  for (int i = 0; i < net->n_layers; ++i) {
    const shv_layer *l = &net->layers[i];
    int output = 0, read = 0;
    for (int k = 0; k < net->n_outputs; ++k) output |= net->outputs[k].layer == i;
    for (int j = i + 1; j < net->n_layers; ++j)
      for (int m = 0; m < net->layers[j].n_inputs; ++m) read |= net->layers[j].inputs[m] == i + 1;
    int rule = output && !read && (l->kind == SHV_CONV || l->kind == SHV_DEPTHWISE) &&
               net->dtype == SHV_FP16;
    flagged += l->out_fp32;
    expected += rule;
    if (l->out_fp32 != rule && differ < 0) differ = i;
  }
  if (flagged && differ >= 0)
    return BLOB_FAIL("layer '%.*s' is %sflagged as stored in fp32; a blob flags exactly the "
                     "convolutions whose output is a network output that no layer reads (%d "
                     "here), or none", net->layers[differ].name_len, net->layers[differ].name,
                     net->layers[differ].out_fp32 ? "" : "not ", expected);
  size_t top = 0;
  for (int t = 0; t <= net->n_layers; ++t) {
    net->tensor_offset[t] = shv_align_up(top);
    const shv_layer *l = t ? &net->layers[t - 1] : NULL;
    top = net->tensor_offset[t] +
          (t ? shv_tensor_bytes(l->out_h, l->out_w, l->out_c, net->dtype) *
                   shv_elem_bytes(shv_out_dtype(l, net->dtype)) / shv_elem_bytes(net->dtype)
             : shv_tensor_bytes(net->in_h, net->in_w, net->in_c, net->dtype));
  }
  net->ddr_bytes = shv_align_up(top);
  return SHV_OK;
}

size_t shv_net_struct_bytes(void) { return sizeof(shv_net); }

size_t shv_net_ddr_bytes(const shv_net *net) { return net->ddr_bytes; }

shv_tensor shv_net_tensor(const shv_net *net, uint8_t *ddr, int t) {
  shv_tensor tensor;
  const shv_layer *l = t ? &net->layers[t - 1] : NULL;
  tensor.h = t ? l->out_h : net->in_h;
  tensor.w = t ? l->out_w : net->in_w;
  tensor.c = t ? l->out_c : net->in_c;
  tensor.lanes = shv_tensor_lanes(tensor.c, net->dtype);
  tensor.blocks = shv_blocks(tensor.c, tensor.lanes);
  tensor.data = ddr + net->tensor_offset[t];
  return tensor;
}

void shv_net_set_input(const shv_net *net, uint8_t *ddr, const float *image) {
  shv_interleave(net->dtype, image, net->in_h, net->in_w, net->in_c, ddr + net->tensor_offset[0]);
}

int shv_net_run_layer(const shv_net *net, int index, uint8_t *slice, size_t slice_bytes,
                      uint8_t *ddr, size_t ddr_bytes, shv_layer_stats *stats, char *err,
                      size_t err_len) {
  if (index < 0 || index >= net->n_layers)
    return shv_fail(err, err_len, SHV_ERR_ARGUMENT, "layer %d of %d", index, net->n_layers);
  if (!ddr || ddr_bytes < net->ddr_bytes)
    return shv_fail(err, err_len, SHV_ERR_ARGUMENT, "DDR of %zu bytes; the network needs %zu",
                    ddr_bytes, net->ddr_bytes);
  const shv_layer *l = &net->layers[index];
  shv_tensor inputs[SHV_MAX_INPUTS];
  for (int i = 0; i < l->n_inputs; ++i) inputs[i] = shv_net_tensor(net, ddr, l->inputs[i]);
  shv_tensor output = shv_net_tensor(net, ddr, index + 1);
  return shv_run_layer(l, net->dtype, inputs, &output, slice, slice_bytes, stats, err, err_len);
}

int shv_net_run(const shv_net *net, uint8_t *slice, size_t slice_bytes, uint8_t *ddr,
                size_t ddr_bytes, shv_layer_stats *per_layer, shv_layer_stats *total, char *err,
                size_t err_len) {
  shv_layer_stats sum;
  memset(&sum, 0, sizeof sum);
  for (int i = 0; i < net->n_layers; ++i) {
    shv_layer_stats s;
    int status = shv_net_run_layer(net, i, slice, slice_bytes, ddr, ddr_bytes, &s, err, err_len);
    if (status) return status;
    if (per_layer) per_layer[i] = s;
    if (s.peak_bytes > sum.peak_bytes) sum.peak_bytes = s.peak_bytes;
    sum.tiles += s.tiles;
    sum.dma_transfers += s.dma_transfers;
    sum.dma_in_bytes += s.dma_in_bytes;
    sum.dma_out_bytes += s.dma_out_bytes;
    sum.expand_vectors += s.expand_vectors;
  }
  if (total) *total = sum;
  return SHV_OK;
}

int shv_net_output(const shv_net *net, const uint8_t *ddr, int k, float *dst, size_t count,
                   char *err, size_t err_len) {
  if (k < 0 || k >= net->n_outputs)
    return shv_fail(err, err_len, SHV_ERR_ARGUMENT, "output %d of %d", k, net->n_outputs);
  const shv_layer *l = &net->layers[net->outputs[k].layer];
  if (count != (size_t)l->out_h * l->out_w * l->out_c)
    return shv_fail(err, err_len, SHV_ERR_ARGUMENT, "output '%.*s' has %d values, not %zu",
                    net->outputs[k].name_len, net->outputs[k].name,
                    l->out_h * l->out_w * l->out_c, count);
  /* The lanes of the net's type; the elements of the type the layer stores. */
  const shv_dtype stored = shv_out_dtype(l, net->dtype);
  const void *src = ddr + net->tensor_offset[net->outputs[k].layer + 1];
  const int lanes = shv_tensor_lanes(l->out_c, net->dtype);
  const size_t pixel = (size_t)shv_blocks(l->out_c, lanes) * lanes;
  for (size_t p = 0; p < (size_t)l->out_h * l->out_w; ++p)
    for (int i = 0; i < l->out_c; ++i) dst[p * l->out_c + i] = shv_load(stored, src, p * pixel + i);
  return SHV_OK;
}
