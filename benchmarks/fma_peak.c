/* The multiply-add peak of one core in float32 GFLOP/s: twelve independent
 * chains of 512-bit (or, without AVX-512, 256-bit) fused multiply-adds, enough
 * to cover the instruction's latency on current x86 cores. Compiled and run
 * by bench_fortran_training.py (cc -O2 -march=native). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void)
{
#ifdef __AVX512F__
    typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMADD _mm512_fmadd_ps
    const int lanes = 16;
#else
    typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMADD _mm256_fmadd_ps
    const int lanes = 8;
#endif
    vec a[12], b = SET1(1.0000001f), c = SET1(1e-8f);
    for (int i = 0; i < 12; i++) a[i] = SET1((float)i);
    const long n = 100000000;
    double t0 = now();
    for (long r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = FMADD(a[i], b, c);
    }
    double t = now() - t0;
    float sink[16] = {0};
    for (int i = 0; i < 12; i++) {
        float v[16];
        *(vec *)v = a[i];
        sink[0] += v[0];
    }
    printf("%.2f %g\n", 12.0 * lanes * 2 * n / t / 1e9, sink[0]);
    return 0;
}
