import ParawaveCore

/// Dilated 1-D convolution over (B, C, T) activations, as K matrix products on shifted
/// views of the input (no im2col copy).
///
/// Weights are (K, Cout, Cin): tap k is a (Cout x Cin) matrix that reads the input
/// `padding - k*d` samples in the past, so
///   `Y[b, :, t] = bias + sum_k W_k X[b, :, t - (padding - k*d)]`, zero outside [0, T).
/// Causal convolution is `padding = (K-1) d` (tap K-1 reads the current sample, tap 0 the
/// oldest, as PyTorch's Conv1d on a left-padded input); a centred one is `(K-1) d / 2`;
/// a 1x1 convolution is K = 1, padding 0.
public struct Conv1d: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let dilation: Int
    public let padding: Int
    /// Its products stay float32 even inside `BLAS.withPrecision(.bfloat16)`: for the layers
    /// that read the waveform or write the model's outputs, where bfloat16's 8-bit mantissa
    /// would add noise at -48 dB to the audio (mixed precision keeps first and last layers
    /// in float32).
    public var keepsFloat32 = false

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int = 1, dilation: Int = 1, padding: Int? = nil) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernelSize > 0 && dilation > 0, "invalid convolution")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.dilation = dilation
        self.padding = padding ?? (kernelSize - 1) * dilation
    }

    /// A causal convolution: output t sees inputs t, t-d, ..., t-(K-1)d.
    public static func causal(inputChannels: Int, outputChannels: Int, kernelSize: Int, dilation: Int) -> Conv1d {
        Conv1d(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize, dilation: dilation)
    }

    /// Weight count, K * Cout * Cin.
    public var weightCount: Int { kernelSize * outputChannels * inputChannels }

    /// How far tap k looks into the past (negative: into the future).
    @inline(__always)
    func shift(_ k: Int) -> Int { padding - k * dilation }

    /// out (B, Cout, T) = conv(inp (B, Cin, T)) + bias, or += when `accumulate`.
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, batch: Int, length T: Int, accumulate: Bool = false) {
        if keepsFloat32 && BLAS.precision != .single {
            return BLAS.withPrecision(.single) {
                forward(out: out, inp: inp, weight: weight, bias: bias, batch: batch, length: T, accumulate: accumulate)
            }
        }
        let Cin = inputChannels, Cout = outputChannels
        for b in 0..<batch {
            let y = out + b * Cout * T, x = inp + b * Cin * T
            if !accumulate {
                for c in 0..<Cout {
                    let value = bias?[c] ?? 0
                    (y + c * T).update(repeating: value, count: T)
                }
            } else if let bias {
                for c in 0..<Cout { let v = bias[c]; for t in 0..<T { y[c * T + t] += v } }
            }
            // In bfloat16 the input is rounded once for all K taps.
            BLAS.withRoundedOperands(kernelSize > 1 ? [(x, Cin * T)] : []) {
                for k in 0..<kernelSize {
                    let s = shift(k)
                    guard abs(s) < T else { continue }
                    let w = weight + k * Cout * Cin
                    // Y[:, t] += W_k X[:, t - s] over the t where both are in range.
                    let (yStart, xStart, n) = s >= 0 ? (s, 0, T - s) : (0, -s, T + s)
                    BLAS.sgemm(m: Cout, n: n, k: Cin, a: w, lda: Cin, b: x + xStart, ldb: T, beta: 1, c: y + yStart, ldc: T)
                }
            }
        }
    }

    /// dInp (B, Cin, T) += W^T dOut; dWeight (K, Cout, Cin) += dOut X^T per tap; dBias += sum dOut.
    public func backward(dInp: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                         dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         batch: Int, length T: Int) {
        if keepsFloat32 && BLAS.precision != .single {
            return BLAS.withPrecision(.single) {
                backward(dInp: dInp, dWeight: dWeight, dBias: dBias, dOut: dOut, inp: inp, weight: weight, batch: batch, length: T)
            }
        }
        let Cin = inputChannels, Cout = outputChannels
        for b in 0..<batch {
            let dy = dOut + b * Cout * T, x = inp + b * Cin * T
            if let dBias {
                for c in 0..<Cout { dBias[c] += VectorMath.sum(dy + c * T, count: T) }
            }
            // In bfloat16 dOut and the input are rounded once for every product of the taps.
            let uses = (dInp != nil ? kernelSize : 0) + (dWeight != nil ? kernelSize : 0)
            BLAS.withRoundedOperands(uses > 1 ? [(dy, Cout * T)] + (dWeight != nil && kernelSize > 1 ? [(x, Cin * T)] : []) : []) {
                for k in 0..<kernelSize {
                    let s = shift(k)
                    guard abs(s) < T else { continue }
                    let w = weight + k * Cout * Cin
                    let (yStart, xStart, n) = s >= 0 ? (s, 0, T - s) : (0, -s, T + s)
                    if let dInp {
                        BLAS.sgemm(transposeA: true, m: Cin, n: n, k: Cout, a: w, lda: Cin, b: dy + yStart, ldb: T,
                                   beta: 1, c: dInp + b * Cin * T + xStart, ldc: T)
                    }
                    if let dWeight {
                        BLAS.sgemm(transposeB: true, m: Cout, n: Cin, k: n, a: dy + yStart, lda: T, b: x + xStart, ldb: T,
                                   beta: 1, c: dWeight + k * Cout * Cin, ldc: Cin)
                    }
                }
            }
        }
    }

    /// The definition, in any precision: the reference the fast path is tested against.
    public func forwardNaive<F: BinaryFloatingPoint>(inp: [F], weight: [F], bias: [F]?, batch: Int, length T: Int) -> [F] {
        let Cin = inputChannels, Cout = outputChannels
        var out = [F](repeating: 0, count: batch * Cout * T)
        for b in 0..<batch {
            for o in 0..<Cout {
                for t in 0..<T {
                    var sum: F = bias?[o] ?? 0
                    for k in 0..<kernelSize {
                        let source = t - shift(k)
                        guard source >= 0 && source < T else { continue }
                        for i in 0..<Cin { sum += weight[(k * Cout + o) * Cin + i] * inp[(b * Cin + i) * T + source] }
                    }
                    out[(b * Cout + o) * T + t] = sum
                }
            }
        }
        return out
    }
}
