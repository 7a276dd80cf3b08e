#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Thin helpers over oneDNN's C API for the one primitive Parawave uses: a matrix product of
// bfloat16 operands into a float32 result. dnnl_dims_t arrays are awkward from Swift, so the
// descriptors are built here.

/// A matmul primitive C (m x n, float32, row stride ldc) = A (m x k) B (k x n), plus C when
/// `accumulate` (a sum post-op), with A and B of type `operands` (dnnl_bf16; dnnl_f32 for
/// the comparison with OpenBLAS that `parawave-bench bf16` makes) at the given row and column strides
/// (a transposed operand is a swap of its strides). Fills the three memory descriptors the
/// primitive's arguments need.
static inline dnnl_status_t parawave_matmul_create(
        dnnl_data_type_t operands, dnnl_engine_t engine, int64_t m, int64_t n, int64_t k,
        int64_t a_row, int64_t a_col, int64_t b_row, int64_t b_col, int64_t ldc, int accumulate,
        dnnl_primitive_t *primitive, dnnl_memory_desc_t *a_md, dnnl_memory_desc_t *b_md, dnnl_memory_desc_t *c_md,
        dnnl_memory_desc_t *scratchpad_md) {
    dnnl_dims_t a_dims = {m, k}, a_strides = {a_row, a_col};
    dnnl_dims_t b_dims = {k, n}, b_strides = {b_row, b_col};
    dnnl_dims_t c_dims = {m, n}, c_strides = {ldc, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(a_md, 2, a_dims, operands, a_strides)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(b_md, 2, b_dims, operands, b_strides)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(c_md, 2, c_dims, dnnl_f32, c_strides)) != dnnl_success) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, a_md, b_md, NULL, c_md)) != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    // The caller passes the scratchpad, so one primitive may run on several threads at once
    // (the library's own scratchpad belongs to the thread that made the primitive).
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return s;
    }
    if (accumulate) {
        dnnl_post_ops_t ops;
        if ((s = dnnl_post_ops_create(&ops)) != dnnl_success) { dnnl_primitive_attr_destroy(attr); return s; }
        dnnl_post_ops_append_sum(ops, 1.0f);
        s = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
        if (s != dnnl_success) { dnnl_primitive_attr_destroy(attr); return s; }
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    const dnnl_memory_desc_t *scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scratch) *scratchpad_md = *scratch;
    else s = dnnl_memory_desc_init_by_tag(scratchpad_md, 0, NULL, dnnl_u8, dnnl_format_tag_undef);
    if (s == dnnl_success) s = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static inline dnnl_status_t parawave_bf16_matmul_create(
        dnnl_engine_t engine, int64_t m, int64_t n, int64_t k,
        int64_t a_row, int64_t a_col, int64_t b_row, int64_t b_col, int64_t ldc, int accumulate,
        dnnl_primitive_t *primitive, dnnl_memory_desc_t *a_md, dnnl_memory_desc_t *b_md, dnnl_memory_desc_t *c_md,
        dnnl_memory_desc_t *scratchpad_md) {
    return parawave_matmul_create(dnnl_bf16, engine, m, n, k, a_row, a_col, b_row, b_col, ldc, accumulate, primitive, a_md, b_md,
                                  c_md, scratchpad_md);
}

/// Bytes of scratchpad a primitive made by `parawave_bf16_matmul_create` needs.
static inline size_t parawave_bf16_scratchpad_size(const dnnl_memory_desc_t *scratchpad_md) {
    return dnnl_memory_desc_get_size(scratchpad_md);
}

/// Runs `primitive` on A, B and C at the given addresses, with the caller's scratchpad (at
/// least `parawave_bf16_scratchpad_size` bytes; unused when that is 0).
static inline dnnl_status_t parawave_bf16_matmul_run(
        dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream,
        const dnnl_memory_desc_t *a_md, const dnnl_memory_desc_t *b_md, const dnnl_memory_desc_t *c_md,
        const dnnl_memory_desc_t *scratchpad_md, const void *a, const void *b, float *c, void *scratchpad) {
    dnnl_memory_t am, bm, cm, sm = NULL;
    dnnl_status_t s;
    if ((s = dnnl_memory_create(&am, a_md, engine, (void *)a)) != dnnl_success) return s;
    if ((s = dnnl_memory_create(&bm, b_md, engine, (void *)b)) != dnnl_success) { dnnl_memory_destroy(am); return s; }
    if ((s = dnnl_memory_create(&cm, c_md, engine, c)) != dnnl_success) { dnnl_memory_destroy(am); dnnl_memory_destroy(bm); return s; }
    int count = 3;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, NULL}};
    if (dnnl_memory_desc_get_size(scratchpad_md) > 0) {
        s = dnnl_memory_create(&sm, scratchpad_md, engine, scratchpad);
        args[3].memory = sm;
        count = 4;
    }
    if (s == dnnl_success) s = dnnl_primitive_execute(primitive, stream, count, args);
    if (s == dnnl_success) s = dnnl_stream_wait(stream);
    dnnl_memory_destroy(am);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(cm);
    if (sm) dnnl_memory_destroy(sm);
    return s;
}

/// Rounds `count` floats to bfloat16 (nearest, ties to even; NaN stays NaN) with the CPU's
/// own conversion instruction (vcvtneps2bf16, AVX512_BF16), 16 at a time. Only call it where
/// `parawave_bf16_convert_native` is available (oneDNN reports AVX512_BF16).
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline void parawave_bf16_convert_native(const float *src, uint16_t *dst, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1u);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
        _mm256_mask_storeu_epi16(dst + i, mask, (__m256i)h);
    }
}
#endif

/// The number of threads oneDNN's products may use from the calling thread. oneDNN runs on
/// OpenMP here (Debian's build links libgomp), whose thread count is a per-thread setting,
/// so each worker that calls a product sets its own. Looked up in the already loaded OpenMP
/// runtime; returns 0 when there is none (another threading runtime), 1 when set.
static inline int parawave_dnnl_set_threads(int threads) {
    static void (*set)(int) = 0;
    static int looked = 0;
    if (!looked) {
        set = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
        looked = 1;
    }
    if (!set) return 0;
    set(threads);
    return 1;
}

/// y (rows) = W x at batch 1 with the CPU's bfloat16 dot-product instruction (vdpbf16ps, two
/// multiply-adds per float32 lane): W packed as (columns / 2, rows, 2) bfloat16 (the pairs of
/// consecutive columns side by side), rows a multiple of 64, columns even; x is rounded to
/// bfloat16 into `pairs` (columns / 2 words). The generator's per-sample products at this
/// shape are measured against its Float16-weight kernel in `parawave-bench bf16`.
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline void parawave_bf16_gemv(const uint16_t *w, const float *x, long rows, long columns, uint32_t *pairs, float *y) {
    long half = columns / 2;
    for (long p = 0; p < half; p++) {
        __m128bh two = _mm_cvtneps_pbh(_mm_set_ps(0, 0, x[2 * p + 1], x[2 * p]));
        pairs[p] = (uint32_t)_mm_cvtsi128_si32((__m128i)two);
    }
    for (long r0 = 0; r0 < rows; r0 += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (long p = 0; p < half; p++) {
            __m512bh xb = (__m512bh)_mm512_set1_epi32((int)pairs[p]);
            const uint16_t *wp = w + (p * rows + r0) * 2;
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(wp), xb);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(wp + 32), xb);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(wp + 64), xb);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(wp + 96), xb);
        }
        _mm512_storeu_ps(y + r0, a0);
        _mm512_storeu_ps(y + r0 + 16, a1);
        _mm512_storeu_ps(y + r0 + 32, a2);
        _mm512_storeu_ps(y + r0 + 48, a3);
    }
}
#endif
