import Foundation

/// Small matrix times a few vectors, for per-sample generation where a BLAS call's fixed
/// cost (and its thread hand-off) exceeds the arithmetic: `y[b, o] += sum_i W[o, i] x[b, i]`.
///
/// W is (m x n) row-major. Four rows at a time are dotted with each vector in 8-lane
/// SIMD accumulators, so a block of W is loaded once per vector and stays in L1 across
/// the batch.
public enum MatVec {
    public static func accumulate(y: UnsafeMutablePointer<Float>, ldy: Int, w: UnsafePointer<Float>, m: Int, n: Int, ldw: Int? = nil,
                                  x: UnsafePointer<Float>, ldx: Int, batch: Int) {
        typealias V = SIMD8<Float>
        let ldw = ldw ?? n
        let n8 = n & ~7
        var o = 0
        while o + 4 <= m {
            let w0 = w + o * ldw, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw
            for b in 0..<batch {
                let xb = x + b * ldx
                var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                var i = 0
                while i < n8 {
                    let xv = VectorMath.load(xb + i)
                    a0 += VectorMath.load(w0 + i) * xv
                    a1 += VectorMath.load(w1 + i) * xv
                    a2 += VectorMath.load(w2 + i) * xv
                    a3 += VectorMath.load(w3 + i) * xv
                    i += 8
                }
                var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
                while i < n {
                    let xv = xb[i]
                    s0 += w0[i] * xv; s1 += w1[i] * xv; s2 += w2[i] * xv; s3 += w3[i] * xv
                    i += 1
                }
                let yb = y + b * ldy + o
                yb[0] += s0; yb[1] += s1; yb[2] += s2; yb[3] += s3
            }
            o += 4
        }
        while o < m {
            let wr = w + o * ldw
            for b in 0..<batch {
                let xb = x + b * ldx
                var acc = V()
                var i = 0
                while i < n8 { acc += VectorMath.load(wr + i) * VectorMath.load(xb + i); i += 8 }
                var s = acc.sum()
                while i < n { s += wr[i] * xb[i]; i += 1 }
                y[b * ldy + o] += s
            }
            o += 1
        }
    }

    /// The definition with Float64 sums: the reference `accumulate` is tested against.
    public static func accumulateNaive(y: UnsafeMutablePointer<Float>, ldy: Int, w: UnsafePointer<Float>, m: Int, n: Int, ldw: Int? = nil,
                                       x: UnsafePointer<Float>, ldx: Int, batch: Int) {
        let ldw = ldw ?? n
        for b in 0..<batch {
            for o in 0..<m {
                var s = 0.0
                for i in 0..<n { s += Double(w[o * ldw + i]) * Double(x[b * ldx + i]) }
                y[b * ldy + o] += Float(s)
            }
        }
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
