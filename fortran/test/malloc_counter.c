/* Counts calls to malloc, calloc and realloc in the test program, for
   test_no_allocation. glibc only: defining these in the executable overrides
   the C library's for every shared library too; the real work is passed on
   to glibc's __libc_* entry points. */
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static long allocation_count = 0;

void *malloc(size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  return __libc_realloc(ptr, size);
}

long fkb_test_allocation_count(void) {
  return __atomic_load_n(&allocation_count, __ATOMIC_RELAXED);
}
