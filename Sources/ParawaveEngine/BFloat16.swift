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

    /// `count` values of `source` into `target`, rounded: by the CPU's conversion instruction
    /// where it has one (AVX512_BF16, which also reads subnormal inputs as zero), otherwise
    /// value by value.
    public static func convert(_ source: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<UInt16>) {
        if BFloat16GEMM.isSupported {
            parawave_bf16_convert_native(source, target, count)
        } else {
            for i in 0..<count { target[i] = from(source[i]) }
        }
    }

    /// A row-major (rows x columns) block at row stride `stride`, rounded into a dense one.
    public static func convert(_ source: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int, into target: UnsafeMutablePointer<UInt16>) {
        if stride == columns { return convert(source, count: rows * columns, into: target) }
        for r in 0..<rows { convert(source + r * stride, count: columns, into: target + r * columns) }
    }
}

/// Matrix products with bfloat16 operands and float32 accumulation and output, through
/// oneDNN's matmul primitive (the engine under PyTorch's and TensorFlow's CPU paths), on
/// CPUs with AVX512_BF16 or AMX. One primitive per shape is built on first use and kept;
/// each calling thread has its own oneDNN stream, so workers may multiply at the same time.
public final class BFloat16GEMM: @unchecked Sendable {
    public static let shared = BFloat16GEMM()

    /// Whether this CPU computes bfloat16 products natively (oneDNN's effective ISA).
    public static let isSupported: Bool = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        return isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue
    }()

    struct Key: Hashable {
        var m, n, k, aRow, aColumn, bRow, bColumn, ldc: Int
        var accumulate: Bool
        var threads: Int
        var float32 = false
    }

    final class Entry {
        var primitive: dnnl_primitive_t?
        var a = dnnl_memory_desc_t(), b = dnnl_memory_desc_t(), c = dnnl_memory_desc_t(), scratchpad = dnnl_memory_desc_t()
        var scratchpadBytes = 0
        deinit { if let primitive { dnnl_primitive_destroy(primitive) } }
    }

    private let lock = NSLock()
    private let engine: dnnl_engine_t?
    private var cache: [Key: Entry] = [:]

    private init() {
        var engine: dnnl_engine_t?
        self.engine = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success ? engine : nil
    }

    /// C (m x n, row stride ldc) = op(A) op(B) (+ C when beta is 1), op(A) m x k and op(B)
    /// k x n, A and B bfloat16 row-major at leading dimensions lda and ldb, transposed as
    /// asked (the same conventions as `BLAS.sgemm`), on at most `threads` threads. Throws
    /// when oneDNN cannot build or run it (no bfloat16 support on this CPU).
    public func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                     a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int? = nil) throws {
        try run(float32: false, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: UnsafeRawPointer(a), lda: lda,
                b: UnsafeRawPointer(b), ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }

    /// The same product with float32 operands through oneDNN's float32 matmul: only for
    /// measuring it against OpenBLAS (`parawave-bench bf16`), which the engine uses.
    public func float32Gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int? = nil) throws {
        try run(float32: true, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: UnsafeRawPointer(a), lda: lda,
                b: UnsafeRawPointer(b), ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }

    private func run(float32: Bool, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafeRawPointer, lda: Int,
                     b: UnsafeRawPointer, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int?) throws {
        precondition(beta == 0 || beta == 1, "beta must be 0 or 1")
        precondition(m > 0 && n > 0 && k > 0, "empty product")
        guard let engine else { throw ParawaveError("oneDNN", "no CPU engine could be created") }
        // oneDNN sizes a primitive's work for the threads it may use when it is made, so the
        // thread count is set first and is part of the key.
        let local = BFloat16ThreadState.current, threads = max(1, threads ?? BLAS.threads)
        local.setThreads(threads)
        let key = Key(m: m, n: n, k: k, aRow: transposeA ? 1 : lda, aColumn: transposeA ? lda : 1,
                      bRow: transposeB ? 1 : ldb, bColumn: transposeB ? ldb : 1, ldc: ldc, accumulate: beta == 1, threads: threads,
                      float32: float32)
        let entry = try self.entry(key, engine: engine)
        let stream = try local.stream(engine)
        let scratchpad = local.scratchpad(bytes: entry.scratchpadBytes)
        let status = withUnsafePointer(to: entry.a) { aMD in
            withUnsafePointer(to: entry.b) { bMD in
                withUnsafePointer(to: entry.c) { cMD in
                    withUnsafePointer(to: entry.scratchpad) { sMD in
                        parawave_bf16_matmul_run(entry.primitive, engine, stream, aMD, bMD, cMD, sMD, a, b, c, scratchpad)
                    }
                }
            }
        }
        guard status == dnnl_success else { throw ParawaveError("oneDNN", "a matrix product failed: status \(status.rawValue)") }
    }

    private func entry(_ key: Key, engine: dnnl_engine_t) throws -> Entry {
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[key] { return cached }
        let entry = Entry()
        let status = parawave_matmul_create(key.float32 ? dnnl_f32 : dnnl_bf16, engine, Int64(key.m), Int64(key.n), Int64(key.k), Int64(key.aRow), Int64(key.aColumn),
                                                 Int64(key.bRow), Int64(key.bColumn), Int64(key.ldc), key.accumulate ? 1 : 0,
                                                 &entry.primitive, &entry.a, &entry.b, &entry.c, &entry.scratchpad)
        guard status == dnnl_success else {
            throw ParawaveError("oneDNN", "cannot build a bfloat16 matrix product (\(key.m) x \(key.n) x \(key.k)): status \(status.rawValue)"
                                + (Self.isSupported ? "" : "; this CPU has no bfloat16 arithmetic"))
        }
        entry.scratchpadBytes = withUnsafePointer(to: entry.scratchpad) { Int(parawave_bf16_scratchpad_size($0)) }
        cache[key] = entry
        return entry
    }
}

/// What each thread keeps for bfloat16 products: its oneDNN stream, the buffers its float32
/// operands are rounded into, and the OpenMP thread count it last set.
final class BFloat16ThreadState {
    private var stream: dnnl_stream_t?
    private var buffers: [UnsafeMutablePointer<UInt16>] = []
    private var capacities: [Int] = []
    private var threads = 0
    private var scratch: UnsafeMutableRawPointer?
    private var scratchBytes = 0

    deinit {
        if let stream { dnnl_stream_destroy(stream) }
        for buffer in buffers { buffer.deallocate() }
        scratch?.deallocate()
    }

    /// At least `bytes` of scratchpad for oneDNN (64-byte aligned).
    func scratchpad(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes > 0 else { return nil }
        if scratchBytes < bytes {
            scratch?.deallocate()
            scratch = .allocate(byteCount: bytes, alignment: 64)
            scratchBytes = bytes
        }
        return scratch
    }

    func stream(_ engine: dnnl_engine_t) throws -> dnnl_stream_t {
        if let stream { return stream }
        var made: dnnl_stream_t?
        guard dnnl_stream_create(&made, engine, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success, let made else {
            throw ParawaveError("oneDNN", "no stream could be created")
        }
        stream = made
        return made
    }

    func setThreads(_ count: Int) {
        guard count != threads else { return }
        _ = parawave_dnnl_set_threads(Int32(max(1, count)))
        threads = count
    }

    /// The regions `BLAS.withRoundedOperands` rounded: the float32 start, the count, the copy.
    private var regions: [(start: UnsafePointer<Float>, count: Int, copy: UnsafePointer<UInt16>)] = []

    /// Rounds `regions` into buffers 2, 3, ... (after those of the regions already held), over
    /// the cores; returns how many were added.
    func round(_ new: [(UnsafePointer<Float>, Int)]) -> Int {
        for (start, count) in new {
            let copy = buffer(2 + regions.count, count: count)
            let chunk = 1 << 16
            Parallel.forEachChunk((count + chunk - 1) / chunk) { range in
                let lo = range.lowerBound * chunk, hi = min(count, range.upperBound * chunk)
                BFloat16.convert(start + lo, count: hi - lo, into: copy + lo)
            }
            regions.append((start, count, UnsafePointer(copy)))
        }
        return new.count
    }

    func forget(_ count: Int) { regions.removeLast(count) }

    /// The rounded copy of the `extent` values from `start`, if a region holds them all.
    func rounded(_ start: UnsafePointer<Float>, extent: Int) -> UnsafePointer<UInt16>? {
        for region in regions.reversed() {
            let offset = region.start.distance(to: start)
            if offset >= 0 && offset + extent <= region.count { return region.copy + offset }
        }
        return nil
    }

    /// Buffer `index` with room for `count` values (0 and 1: a block's operands; from 2: the
    /// rounded regions).
    func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<UInt16> {
        while buffers.count <= index {
            buffers.append(.allocate(capacity: 1))
            capacities.append(1)
        }
        if capacities[index] < count {
            buffers[index].deallocate()
            buffers[index] = .allocate(capacity: count)
            capacities[index] = count
        }
        return buffers[index]
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<BFloat16ThreadState>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// The calling thread's state, made on first use and released when the thread ends.
    static var current: BFloat16ThreadState {
        if let pointer = pthread_getspecific(key) { return Unmanaged<BFloat16ThreadState>.fromOpaque(pointer).takeUnretainedValue() }
        let state = BFloat16ThreadState()
        pthread_setspecific(key, Unmanaged.passRetained(state).toOpaque())
        return state
    }
}
