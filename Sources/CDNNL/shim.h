#include <oneapi/dnnl/dnnl.h>

// Thin helpers over oneDNN's C API for the one primitive Parawave uses: a matrix product of
// bfloat16 operands into a float32 result. dnnl_dims_t arrays are awkward from Swift, so the
// descriptors are built here.

/// A matmul primitive C (m x n, float32, row stride ldc) = A (m x k) B (k x n), plus C when
/// `accumulate` (a sum post-op), with A and B bfloat16 at the given row and column strides
/// (a transposed operand is a swap of its strides). Fills the three memory descriptors the
/// primitive's arguments need.
static inline dnnl_status_t parawave_bf16_matmul_create(
        dnnl_engine_t engine, int64_t m, int64_t n, int64_t k,
        int64_t a_row, int64_t a_col, int64_t b_row, int64_t b_col, int64_t ldc, int accumulate,
        dnnl_primitive_t *primitive, dnnl_memory_desc_t *a_md, dnnl_memory_desc_t *b_md, dnnl_memory_desc_t *c_md) {
    dnnl_dims_t a_dims = {m, k}, a_strides = {a_row, a_col};
    dnnl_dims_t b_dims = {k, n}, b_strides = {b_row, b_col};
    dnnl_dims_t c_dims = {m, n}, c_strides = {ldc, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(a_md, 2, a_dims, dnnl_bf16, a_strides)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(b_md, 2, b_dims, dnnl_bf16, b_strides)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(c_md, 2, c_dims, dnnl_f32, c_strides)) != dnnl_success) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, a_md, b_md, NULL, c_md)) != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
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
    s = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/// Runs `primitive` on A, B and C at the given addresses.
static inline dnnl_status_t parawave_bf16_matmul_run(
        dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream,
        const dnnl_memory_desc_t *a_md, const dnnl_memory_desc_t *b_md, const dnnl_memory_desc_t *c_md,
        const void *a, const void *b, float *c) {
    dnnl_memory_t am, bm, cm;
    dnnl_status_t s;
    if ((s = dnnl_memory_create(&am, a_md, engine, (void *)a)) != dnnl_success) return s;
    if ((s = dnnl_memory_create(&bm, b_md, engine, (void *)b)) != dnnl_success) { dnnl_memory_destroy(am); return s; }
    if ((s = dnnl_memory_create(&cm, c_md, engine, c)) != dnnl_success) { dnnl_memory_destroy(am); dnnl_memory_destroy(bm); return s; }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    s = dnnl_primitive_execute(primitive, stream, 3, args);
    if (s == dnnl_success) s = dnnl_stream_wait(stream);
    dnnl_memory_destroy(am);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(cm);
    return s;
}
