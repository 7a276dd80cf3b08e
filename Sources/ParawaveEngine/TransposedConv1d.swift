import ParawaveCore

/// Strided 1-D transposed convolution over (B, C, F) frames: the learned upsampler that turns
/// F conditioning frames into exactly F * stride samples.
///
/// Weights are (K, Cout, Cin): tap k is a (Cout x Cin) matrix, and input frame f adds
/// `W_k X[b, :, f]` to output sample `f*s + k - padding`, so
///   `Y[b, :, t] = bias + sum over (f, k) with f*s + k - padding = t of W_k X[b, :, f]`,
/// for t in [0, F*s). This is the full transposed convolution (length (F-1)*s + K) read
/// from sample `padding` on for F*s samples; in PyTorch terms it is
/// `ConvTranspose1d(Cin, Cout, K, stride=s, padding=0)(x)[:, :, padding : padding + F*s]`,
/// with PyTorch's weight (Cin, Cout, K) = ours permuted (2, 1, 0).
///
/// The default padding `(K - s) / 2` (rounded down) centres each frame's K taps on its own
/// samples [f*s, (f+1)*s): exactly when K - s is even (K = 2s with s even: padding s/2), half
/// a sample late when it is odd. Then the output equals `ConvTranspose1d(..., padding=(K - s)//2)`,
/// whose length is F*s when K - s is even and F*s + 1 when odd (we drop that last sample).
///
/// Forward is one matrix product per batch item and block of taps, `Z = W X`
/// ((K*Cout) x Cin times Cin x F), then an overlap-add of Z's rows into the output at stride s
/// (col2im); backward gathers dOut the same way (im2col) and reuses it for both products.
/// Each call allocates one scratch buffer of at most max(2^20, Cout * F) floats; taps are
/// grouped so that a block's Z fits it.
public struct TransposedConv1d: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int

    /// Scratch floats per product, which bounds how many taps one product covers.
    static let scratchBudget = 1 << 20

    /// Requires `kernelSize >= stride` (every output sample is reached) and
    /// `0 <= padding <= kernelSize - stride` (the F*s samples lie inside the full output).
    public init(inputChannels: Int, outputChannels: Int, stride: Int, kernelSize: Int? = nil, padding: Int? = nil) {
        let K = kernelSize ?? 2 * stride
        precondition(inputChannels > 0 && outputChannels > 0 && stride > 0 && K >= stride,
                     "invalid transposed convolution: needs positive channels and stride, and kernel size >= stride")
        let p = padding ?? (K - stride) / 2
        precondition(p >= 0 && p <= K - stride, "transposed convolution padding must lie in [0, kernelSize - stride]")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = K
        self.stride = stride
        self.padding = p
    }

    /// Weight count, K * Cout * Cin.
    public var weightCount: Int { kernelSize * outputChannels * inputChannels }

    /// Output samples for `frames` input frames, F * s.
    public func outputLength(frames F: Int) -> Int { F * stride }

    /// The frames f whose tap k lands inside the output: 0 <= f*s + k - padding < F*s.
    @inline(__always)
    func frameRange(_ k: Int, frames F: Int) -> Range<Int> {
        let u = k - padding, T = F * stride
        let lo = u >= 0 ? 0 : (-u + stride - 1) / stride
        let hi = T - 1 - u < 0 ? 0 : min(F, (T - 1 - u) / stride + 1)
        return lo..<max(lo, hi)
    }

    /// Taps per matrix product: all K when the scratch (taps * Cout * F) fits the budget.
    @inline(__always)
    func tapsPerBlock(frames F: Int) -> Int {
        max(1, min(kernelSize, Self.scratchBudget / max(1, outputChannels * F)))
    }

    /// out (B, Cout, F*s) = transposed conv(inp (B, Cin, F)) + bias, or += when `accumulate`.
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, batch: Int, frames F: Int, accumulate: Bool = false) {
        let Cin = inputChannels, Cout = outputChannels, s = stride, T = F * s
        guard F > 0 else { return }
        let block = tapsPerBlock(frames: F)
        let z = UnsafeMutablePointer<Float>.allocate(capacity: block * Cout * F)  // (taps, Cout, F)
        defer { z.deallocate() }
        for b in 0..<batch {
            let y = out + b * Cout * T, x = inp + b * Cin * F  // (Cout, T), (Cin, F)
            if !accumulate {
                for c in 0..<Cout { (y + c * T).update(repeating: bias?[c] ?? 0, count: T) }
            } else if let bias {
                for c in 0..<Cout { let v = bias[c]; for t in 0..<T { y[c * T + t] += v } }
            }
            for k0 in Swift.stride(from: 0, to: kernelSize, by: block) {
                let taps = min(block, kernelSize - k0)
                // Z (taps*Cout, F) = W[k0 ..< k0+taps] (taps*Cout, Cin) X (Cin, F).
                BLAS.sgemm(m: taps * Cout, n: F, k: Cin, a: weight + k0 * Cout * Cin, lda: Cin, b: x, ldb: F,
                           c: z, ldc: F)
                // Overlap-add: Y[o, f*s + k - padding] += Z[k, o, f].
                for j in 0..<taps {
                    let k = k0 + j, range = frameRange(k, frames: F), u = k - padding
                    for o in 0..<Cout {
                        let zr = z + (j * Cout + o) * F, yr = y + o * T
                        for f in range { yr[f * s + u] += zr[f] }
                    }
                }
            }
        }
    }

    /// dInp (B, Cin, F) += W^T dZ; dWeight (K, Cout, Cin) += dZ X^T; dBias += sum dOut,
    /// where dZ[k, o, f] = dOut[o, f*s + k - padding] (zero outside the output).
    public func backward(dInp: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                         dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         batch: Int, frames F: Int) {
        let Cin = inputChannels, Cout = outputChannels, s = stride, T = F * s
        guard F > 0 else { return }
        let block = tapsPerBlock(frames: F)
        let dz = UnsafeMutablePointer<Float>.allocate(capacity: block * Cout * F)  // (taps, Cout, F)
        defer { dz.deallocate() }
        for b in 0..<batch {
            let dy = dOut + b * Cout * T, x = inp + b * Cin * F  // (Cout, T), (Cin, F)
            if let dBias {
                for c in 0..<Cout { dBias[c] += VectorMath.sum(dy + c * T, count: T) }
            }
            guard dInp != nil || dWeight != nil else { continue }
            for k0 in Swift.stride(from: 0, to: kernelSize, by: block) {
                let taps = min(block, kernelSize - k0)
                // Gather (im2col): dZ[k, o, f] = dOut[o, f*s + k - padding].
                for j in 0..<taps {
                    let k = k0 + j, range = frameRange(k, frames: F), u = k - padding
                    for o in 0..<Cout {
                        let zr = dz + (j * Cout + o) * F, yr = dy + o * T
                        zr.update(repeating: 0, count: range.lowerBound)
                        for f in range { zr[f] = yr[f * s + u] }
                        (zr + range.upperBound).update(repeating: 0, count: F - range.upperBound)
                    }
                }
                if let dInp {
                    // dX (Cin, F) += W_block^T (Cin, taps*Cout) dZ (taps*Cout, F).
                    BLAS.sgemm(transposeA: true, m: Cin, n: F, k: taps * Cout, a: weight + k0 * Cout * Cin, lda: Cin,
                               b: dz, ldb: F, beta: 1, c: dInp + b * Cin * F, ldc: F)
                }
                if let dWeight {
                    // dW_block (taps*Cout, Cin) += dZ (taps*Cout, F) X^T (F, Cin).
                    BLAS.sgemm(transposeB: true, m: taps * Cout, n: Cin, k: F, a: dz, lda: F, b: x, ldb: F,
                               beta: 1, c: dWeight + k0 * Cout * Cin, ldc: Cin)
                }
            }
        }
    }

    /// The definition, in any precision: the reference the fast path is tested against.
    public func forwardNaive<R: BinaryFloatingPoint>(inp: [R], weight: [R], bias: [R]?, batch: Int, frames F: Int) -> [R] {
        let Cin = inputChannels, Cout = outputChannels, T = F * stride
        var out = [R](repeating: 0, count: batch * Cout * T)
        for b in 0..<batch {
            for o in 0..<Cout {
                for t in 0..<T { out[(b * Cout + o) * T + t] = bias?[o] ?? 0 }
                for f in 0..<F {
                    for k in 0..<kernelSize {
                        let t = f * stride + k - padding
                        guard t >= 0 && t < T else { continue }
                        var sum: R = 0
                        for i in 0..<Cin { sum += weight[(k * Cout + o) * Cin + i] * inp[(b * Cin + i) * F + f] }
                        out[(b * Cout + o) * T + t] += sum
                    }
                }
            }
        }
        return out
    }
}
