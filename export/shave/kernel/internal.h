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

#endif /* HAND25D_SHAVE_INTERNAL_H_ */
