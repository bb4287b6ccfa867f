/* Helpers shared by the kernel's sources; not part of the API. */
#ifndef HAND25D_SHAVE_INTERNAL_H_
#define HAND25D_SHAVE_INTERNAL_H_

#include <stdarg.h>
#include <stdio.h>

#include "shave_kernel.h"

/* Writes the message into err (if any) and returns code. */
static inline int shv_fail(char *err, size_t err_len, int code, const char *format, ...) {
  if (err && err_len) {
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_len, format, args);
    va_end(args);
  }
  return code;
}

static inline size_t shv_align_up(size_t n) { return (n + SHV_ALIGN - 1) / SHV_ALIGN * SHV_ALIGN; }

/* Element i of a storage-type array, as float; and the store, rounding to nearest even. */
static inline float shv_load(shv_dtype dtype, const void *p, size_t i) {
  return dtype == SHV_FP16 ? shv_h2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static inline void shv_store(shv_dtype dtype, void *p, size_t i, float v) {
  if (dtype == SHV_FP16)
    ((uint16_t *)p)[i] = shv_f2h(v);
  else
    ((float *)p)[i] = v;
}

#endif /* HAND25D_SHAVE_INTERNAL_H_ */
