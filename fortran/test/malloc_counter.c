/* Counts calls to malloc, calloc and realloc in the test program (for
   test_no_allocation) and can make the large ones fail (for
   test_allocation_failures). glibc only: defining these in the executable
   overrides the C library's for every shared library too; the real work is
   passed on to glibc's __libc_* entry points. */
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static long allocation_count = 0;
static size_t failing_from = 0; /* 0: nothing fails */

static int refused(size_t size) {
  if (failing_from != 0 && size >= __atomic_load_n(&failing_from, __ATOMIC_RELAXED)) {
    errno = ENOMEM;
    return 1;
  }
  return 0;
}

void *malloc(size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  if (refused(size)) return NULL;
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  if (size != 0 && n > (size_t)-1 / size) return __libc_calloc(n, size); /* glibc refuses */
  if (refused(n * size)) return NULL;
  return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
  __atomic_add_fetch(&allocation_count, 1, __ATOMIC_RELAXED);
  if (refused(size)) return NULL;
  return __libc_realloc(ptr, size);
}

long fkb_test_allocation_count(void) {
  return __atomic_load_n(&allocation_count, __ATOMIC_RELAXED);
}

/* From now on every allocation of at least `bytes` bytes fails as if the
   memory were exhausted; 0 lifts the limit. */
void fkb_test_fail_allocations_from(size_t bytes) {
  __atomic_store_n(&failing_from, bytes, __ATOMIC_RELAXED);
}
