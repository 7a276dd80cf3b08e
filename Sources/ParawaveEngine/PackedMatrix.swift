import Foundation

/// A matrix stored for per-sample products with a few vectors, where a BLAS call's fixed
/// cost (and its thread hand-off) exceeds the arithmetic: `y[b, o] = a[b, o] + sum_i W[o, i] x[b, i]`.
///
/// The rows are cut into panels of 64 (then 32, then 8, the last padded with zero rows), and
/// each panel is stored column after column: for input i, the panel's weights of i are
/// contiguous. A product streams the matrix front to back exactly once per vector, broadcasts
/// x[i] and adds it times a panel column into 8-lane fused multiply-add accumulators (eight
/// per 64-row panel, one per 8 rows), so there are no horizontal sums and no partial cache
/// lines. Per-sample generation reads more weights per sample than the caches nearest the
/// cores hold, so its speed is the speed at which they stream; `.half` stores them as Float16
/// (F16C's `vcvtph2ps` converts them as they are loaded), which halves those bytes.
public final class PackedMatrix: @unchecked Sendable {
    /// How the weights are stored. Sums are Float32 either way.
    public enum Precision: String, Sendable, CaseIterable {
        /// Float32.
        case single
        /// Float16, rounded to nearest: a relative error of at most 2^-11 per weight.
        case half
    }

    public let rows: Int, columns: Int, precision: Precision
    /// Rows rounded up to a multiple of 8.
    let paddedRows: Int
    let single: UnsafeMutablePointer<Float>?
    let half: UnsafeMutablePointer<Float16>?

    /// Packs the (rows x columns) matrix whose element (o, i) is `element(o, i)`.
    public init(rows: Int, columns: Int, precision: Precision = .single, element: (Int, Int) -> Float) {
        precondition(rows >= 0 && columns >= 0)
        self.rows = rows; self.columns = columns; self.precision = precision
        paddedRows = (rows + 7) / 8 * 8
        let count = max(1, paddedRows * columns)
        var values = [Float](repeating: 0, count: count)
        PackedMatrix.panels(rows: rows) { start, width in
            for i in 0..<columns {
                for r in 0..<width where start + r < rows { values[start * columns + i * width + r] = element(start + r, i) }
            }
        }
        switch precision {
        case .single:
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(from: values, count: count)
            single = p; half = nil
        case .half:
            let p = UnsafeMutablePointer<Float16>.allocate(capacity: count)
            p.initialize(from: values.map { Float16($0) }, count: count)
            single = nil; half = p
        }
    }

    /// Packs a row-major (rows x columns) matrix with row stride `ld`.
    public convenience init(rows: Int, columns: Int, precision: Precision = .single, values: UnsafePointer<Float>, ld: Int? = nil) {
        let ld = ld ?? columns
        self.init(rows: rows, columns: columns, precision: precision) { values[$0 * ld + $1] }
    }

    deinit {
        single?.deallocate()
        half?.deallocate()
    }

    /// The stored element (o, i), as the products use it (rounded when `.half`).
    public subscript(o: Int, i: Int) -> Float {
        var value: Float = 0
        PackedMatrix.panels(rows: rows) { start, width in
            guard o >= start && o < start + width else { return }
            let index = start * columns + i * width + (o - start)
            value = single.map { $0[index] } ?? Float(half![index])
        }
        return value
    }

    /// Bytes the stored weights occupy.
    public var bytes: Int { paddedRows * columns * (precision == .single ? 4 : 2) }

    /// Calls `body(start, width)` for each panel: widths 64, then 32, then 8.
    @inline(__always)
    static func panels(rows: Int, _ body: (Int, Int) -> Void) {
        var start = 0
        for width in [64, 32, 8] {
            while start + width <= rows || (width == 8 && start < rows) {
                body(start, width)
                start += width
            }
        }
    }

    /// `y[b * ldy + o] = a[b * ldAddend + o] + sum_i W[o, i] x[b * ldx + i]` for b < batch,
    /// o < rows; without `addend`, a = 0. `y` may be `addend` (then y += W x).
    public func product(y: UnsafeMutablePointer<Float>, ldy: Int, addend: UnsafePointer<Float>? = nil, ldAddend: Int = 0,
                        x: UnsafePointer<Float>, ldx: Int, batch: Int) {
        withUnsafePointer(to: x) { product(y: y, ldy: ldy, addend: addend, ldAddend: ldAddend, segments: $0, count: 1, ldx: ldx, batch: batch) }
    }

    /// The product with the input in `count` segments of columns/count each: segment k of
    /// vector b starts at `segments[k] + b * ldx`. This is a dilated convolution's K taps
    /// (stored side by side) against K past inputs, in one pass over the weights.
    public func product(y: UnsafeMutablePointer<Float>, ldy: Int, addend: UnsafePointer<Float>? = nil, ldAddend: Int = 0,
                        segments: UnsafePointer<UnsafePointer<Float>>, count: Int, ldx: Int, batch: Int) {
        precondition(count >= 1 && columns % count == 0, "\(count) segments do not divide \(columns) columns")
        if let single {
            PackedMatrix.kernel(single, rows: rows, columns: columns, y: y, ldy: ldy, addend: addend, ldAddend: ldAddend,
                                segments: segments, count: count, ldx: ldx, batch: batch)
        } else {
            PackedMatrix.kernel(half!, rows: rows, columns: columns, y: y, ldy: ldy, addend: addend, ldAddend: ldAddend,
                                segments: segments, count: count, ldx: ldx, batch: batch)
        }
    }

    /// The definition with Float64 sums over the stored elements: the reference the products
    /// are tested against.
    public func productNaive(y: UnsafeMutablePointer<Float>, ldy: Int, addend: UnsafePointer<Float>? = nil, ldAddend: Int = 0,
                             segments: UnsafePointer<UnsafePointer<Float>>, count: Int, ldx: Int, batch: Int) {
        let width = columns / count
        for b in 0..<batch {
            for o in 0..<rows {
                var s = Double(addend?[b * ldAddend + o] ?? 0)
                for i in 0..<columns { s += Double(self[o, i]) * Double(segments[i / width][b * ldx + i % width]) }
                y[b * ldy + o] = Float(s)
            }
        }
    }

    @inline(__always)
    static func kernel<E: PackedElement>(_ w: UnsafePointer<E>, rows: Int, columns: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
                                         addend: UnsafePointer<Float>?, ldAddend: Int, segments: UnsafePointer<UnsafePointer<Float>>,
                                         count: Int, ldx: Int, batch: Int) {
        typealias V = SIMD8<Float>
        let width = columns / count
        var start = 0
        // 64-row panels: eight accumulators.
        while start + 64 <= rows {
            let panel = w + start * columns
            for b in 0..<batch {
                let a = addend.map { $0 + b * ldAddend + start }
                var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
                if let a {
                    a0 = VectorMath.load(a); a1 = VectorMath.load(a + 8); a2 = VectorMath.load(a + 16); a3 = VectorMath.load(a + 24)
                    a4 = VectorMath.load(a + 32); a5 = VectorMath.load(a + 40); a6 = VectorMath.load(a + 48); a7 = VectorMath.load(a + 56)
                }
                var p = panel
                for k in 0..<count {
                    let xs = segments[k] + b * ldx
                    for i in 0..<width {
                        let v = V(repeating: xs[i])
                        a0 = a0.addingProduct(E.load8(p), v); a1 = a1.addingProduct(E.load8(p + 8), v)
                        a2 = a2.addingProduct(E.load8(p + 16), v); a3 = a3.addingProduct(E.load8(p + 24), v)
                        a4 = a4.addingProduct(E.load8(p + 32), v); a5 = a5.addingProduct(E.load8(p + 40), v)
                        a6 = a6.addingProduct(E.load8(p + 48), v); a7 = a7.addingProduct(E.load8(p + 56), v)
                        p += 64
                    }
                }
                let out = y + b * ldy + start
                VectorMath.store(a0, out); VectorMath.store(a1, out + 8); VectorMath.store(a2, out + 16); VectorMath.store(a3, out + 24)
                VectorMath.store(a4, out + 32); VectorMath.store(a5, out + 40); VectorMath.store(a6, out + 48); VectorMath.store(a7, out + 56)
            }
            start += 64
        }
        // A 32-row panel: four accumulators.
        if start + 32 <= rows {
            let panel = w + start * columns
            for b in 0..<batch {
                let a = addend.map { $0 + b * ldAddend + start }
                var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                if let a { a0 = VectorMath.load(a); a1 = VectorMath.load(a + 8); a2 = VectorMath.load(a + 16); a3 = VectorMath.load(a + 24) }
                var p = panel
                for k in 0..<count {
                    let xs = segments[k] + b * ldx
                    for i in 0..<width {
                        let v = V(repeating: xs[i])
                        a0 = a0.addingProduct(E.load8(p), v); a1 = a1.addingProduct(E.load8(p + 8), v)
                        a2 = a2.addingProduct(E.load8(p + 16), v); a3 = a3.addingProduct(E.load8(p + 24), v)
                        p += 32
                    }
                }
                let out = y + b * ldy + start
                VectorMath.store(a0, out); VectorMath.store(a1, out + 8); VectorMath.store(a2, out + 16); VectorMath.store(a3, out + 24)
            }
            start += 32
        }
        // 8-row panels, the last one padded: one accumulator, stored lane by lane past the end.
        while start < rows {
            let panel = w + start * columns, valid = min(8, rows - start)
            for b in 0..<batch {
                var acc = V()
                if let addend { for r in 0..<valid { acc[r] = addend[b * ldAddend + start + r] } }
                var p = panel
                for k in 0..<count {
                    let xs = segments[k] + b * ldx
                    for i in 0..<width { acc = acc.addingProduct(E.load8(p), V(repeating: xs[i])); p += 8 }
                }
                let out = y + b * ldy + start
                if valid == 8 { VectorMath.store(acc, out) } else { for r in 0..<valid { out[r] = acc[r] } }
            }
            start += 8
        }
    }
}

/// An element type a `PackedMatrix` stores: Float, or Float16 converted on load.
protocol PackedElement {
    static func load8(_ p: UnsafePointer<Self>) -> SIMD8<Float>
}

extension Float: PackedElement {
    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { VectorMath.load(p) }
}

extension Float16: PackedElement {
    @inline(__always) static func load8(_ p: UnsafePointer<Float16>) -> SIMD8<Float> {
        SIMD8<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float16>.self))
    }
}

extension GatedUnit {
    /// The gate on one sample's vector: z[c] = tanh(a[c]) * sigmoid(g[c]), no threading.
    @inline(__always)
    public static func forwardVector(out z: UnsafeMutablePointer<Float>, tanhInput a: UnsafePointer<Float>, sigmoidInput g: UnsafePointer<Float>,
                                     count: Int) {
        var c = 0
        while c + 8 <= count {
            VectorMath.store(VectorMath.tanh(VectorMath.load(a + c)) * VectorMath.sigmoid(VectorMath.load(g + c)), z + c)
            c += 8
        }
        while c < count { z[c] = tanh(a[c]) * StableMath.sigmoid(g[c]); c += 1 }
    }
}
