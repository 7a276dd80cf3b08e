import CDNNL
import Foundation
import ParawaveCore

/// bfloat16: the top 16 bits of a Float32 (8 exponent bits, 7 mantissa bits), rounded to
/// nearest, ties to even, as every bfloat16 unit rounds. NaN stays NaN.
public enum BFloat16 {
    @inline(__always)
    public static func from(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inline(__always)
    public static func float(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// `count` values of `source` into `target`, rounded.
    public static func convert(_ source: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<UInt16>) {
        for i in 0..<count { target[i] = from(source[i]) }
    }

    /// A row-major (rows x columns) block at row stride `stride`, rounded into a dense one.
    public static func convert(_ source: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int, into target: UnsafeMutablePointer<UInt16>) {
        for r in 0..<rows { convert(source + r * stride, count: columns, into: target + r * columns) }
    }
}

/// Matrix products with bfloat16 operands and float32 accumulation and output, through
/// oneDNN's matmul primitive (the engine under PyTorch's and TensorFlow's CPU paths), on
/// CPUs with AVX512_BF16 or AMX. One primitive per shape is built on first use and kept.
public final class BFloat16GEMM: @unchecked Sendable {
    public static let shared = BFloat16GEMM()

    /// Whether this CPU computes bfloat16 products natively (oneDNN's effective ISA).
    public static var isSupported: Bool {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        return isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue
    }

    struct Key: Hashable {
        var m, n, k, aRow, aColumn, bRow, bColumn, ldc: Int
        var accumulate: Bool
    }

    final class Entry {
        var primitive: dnnl_primitive_t?
        var a = dnnl_memory_desc_t(), b = dnnl_memory_desc_t(), c = dnnl_memory_desc_t()
        deinit { if let primitive { dnnl_primitive_destroy(primitive) } }
    }

    private let lock = NSLock()
    private var engine: dnnl_engine_t?
    private var stream: dnnl_stream_t?
    private var cache: [Key: Entry] = [:]

    private init() {
        var engine: dnnl_engine_t?
        if dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine {
            self.engine = engine
            var stream: dnnl_stream_t?
            if dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success { self.stream = stream }
        }
    }

    /// C (m x n, row stride ldc) = op(A) op(B) (+ C when beta is 1), op(A) m x k and op(B)
    /// k x n, A and B bfloat16 row-major at leading dimensions lda and ldb, transposed as
    /// asked (the same conventions as `BLAS.sgemm`). Throws when oneDNN cannot build or run it
    /// (no bfloat16 support on this CPU).
    public func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                     a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) throws {
        precondition(beta == 0 || beta == 1, "beta must be 0 or 1")
        precondition(m > 0 && n > 0 && k > 0, "empty product")
        let key = Key(m: m, n: n, k: k, aRow: transposeA ? 1 : lda, aColumn: transposeA ? lda : 1,
                      bRow: transposeB ? 1 : ldb, bColumn: transposeB ? ldb : 1, ldc: ldc, accumulate: beta == 1)
        lock.lock()
        defer { lock.unlock() }
        guard let engine, let stream else { throw ParawaveError("oneDNN", "no CPU engine could be created") }
        let entry: Entry
        if let cached = cache[key] {
            entry = cached
        } else {
            entry = Entry()
            let status = parawave_bf16_matmul_create(engine, Int64(m), Int64(n), Int64(k), Int64(key.aRow), Int64(key.aColumn),
                                                     Int64(key.bRow), Int64(key.bColumn), Int64(ldc), key.accumulate ? 1 : 0,
                                                     &entry.primitive, &entry.a, &entry.b, &entry.c)
            guard status == dnnl_success else {
                throw ParawaveError("oneDNN", "cannot build a bfloat16 matrix product (\(m) x \(n) x \(k)): status \(status.rawValue)"
                                    + (Self.isSupported ? "" : "; this CPU has no bfloat16 arithmetic"))
            }
            cache[key] = entry
        }
        let status = parawave_bf16_matmul_run(entry.primitive, engine, stream, &entry.a, &entry.b, &entry.c, a, b, c)
        guard status == dnnl_success else { throw ParawaveError("oneDNN", "a bfloat16 matrix product failed: status \(status.rawValue)") }
    }
}
