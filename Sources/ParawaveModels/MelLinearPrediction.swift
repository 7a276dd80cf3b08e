import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// All-pole linear prediction derived from the mel alone (LPCNet, LP-WaveNet): per frame, an
/// order-P predictor A(z) = 1 + sum_k a_k z^-k and its prediction-error power E, so a model
/// only has to learn the excitation e_t = x_t - p_t, p_t = -sum_k a_k x_(t-k), whose scale
/// sqrt(E) the mel also gives.
///
/// Per frame of the raw natural-log mel (DESIGN.md section 2):
/// 1. the mel, with bands at the log floor set to 0, times the filterbank's pseudo-inverse
///    (LAPACK's SVD), clipped at 0: an estimate S of the frame's |STFT| (of |STFT|^2 for a
///    power-2 mel, then used as P directly);
/// 2. the power spectrum P = S^2 + Q^2, where Q^2 = sum_n w_n^2 Delta^2 / 12 is the power of
///    the quantisation noise of `bits`-bit audio (step Delta = 2 / (2^bits - 1)) in one bin of
///    the analysis window w. This floor is what keeps E from collapsing in silent or
///    band-limited frames; measured on the demo corpus, a floor of 1e-5 or no white-noise
///    floor at all costs 0.5-3.5 nats per sample, a white-noise correction of the
///    autocorrelation costs more still;
/// 3. its autocorrelation r_k = IDFT(P)_k, k = 0...P (the inverse real DFT of size n_fft);
/// 4. Levinson-Durbin: a_1...a_P and E.
///
/// Sample t uses its nearest frame, frame round(t / hop) (frames are centred at t * hop);
/// interpolating autocorrelations or reflection coefficients between frames measured
/// 0.007-0.017 nats per sample worse. On the demo corpus's validation split, order 24 with a
/// logistic of scale 0.030 sqrt(E) scores 5.17 nats per sample with no training (5.15 with
/// an order-24 predictor fitted to the audio itself and an oracle scale; previous-sample
/// prediction with an oracle scale: 5.54); order 16 is 0.04-0.09 nats worse.
public final class MelLinearPrediction: @unchecked Sendable {
    /// The orders a model may ask for.
    public static let orders = 1...64

    /// What is wrong with a model's `order` for mels of `mel` (0: no linear prediction).
    public static func problems(order: Int, mel: MelSettings) -> [String] {
        guard order != 0 else { return [] }
        return orders.contains(order) && order < mel.nFFT / 2 ? []
            : ["linearPrediction \(order) is outside \(orders) (or 0) or not below n_fft / 2 (\(mel.nFFT / 2))"]
    }

    public let mel: MelSettings
    /// P, the predictor order.
    public let order: Int
    /// The quantisation noise floor Q^2 added to every bin's power.
    public let noisePower: Double
    /// ln of the logistic scale per unit sqrt(E) for white excitation: sqrt(3) / (pi sqrt(sum w^2)),
    /// the value a model's learned gain starts from.
    public let logScalePerRMS: Double
    /// ln of the standard deviation per sample per unit sqrt(E) for white excitation:
    /// 1 / sqrt(sum w^2) (E is the error power of a windowed frame).
    public let logDeviationPerRMS: Double

    /// ln of `distribution`'s scale parameter per unit sqrt(E) for white excitation: a
    /// logistic's scale is sqrt(3)/pi of its deviation (`logScalePerRMS`), a Gaussian's is its
    /// deviation (`logDeviationPerRMS`).
    public func whiteLogScale(_ distribution: SampleDistribution) -> Double {
        distribution == .logistic ? logScalePerRMS : logDeviationPerRMS
    }
    let bins: Int
    /// The filterbank's pseudo-inverse (bins, nMels), row-major.
    let inverse: [Double]
    /// IDFT weights (order + 1, bins): r_k = sum_j cosines[k, j] P_j.
    let cosines: [Double]
    /// Mel values at or below this are the log floor, taken as 0.
    let floorLevel: Float

    public init(mel: MelSettings, order: Int, bits: Int) {
        precondition(order >= 1 && order < mel.nFFT / 2, "order must be in 1..<n_fft/2")
        self.mel = mel
        self.order = order
        let filterbank = MelFilterbank(settings: mel)
        bins = filterbank.bins
        guard let inverse = LAPACK.pseudoInverse(filterbank.weights.map(Double.init), rows: mel.nMels, columns: bins) else {
            preconditionFailure("LAPACK could not pseudo-invert the mel filterbank")
        }
        self.inverse = inverse
        let N = mel.nFFT
        var cosines = [Double](repeating: 0, count: (order + 1) * bins)
        for k in 0...order {
            for j in 0..<bins {
                let edge = j == 0 || (N % 2 == 0 && j == N / 2)
                cosines[k * bins + j] = (edge ? 1 : 2) * cos(2 * Double.pi * Double(j * k) / Double(N)) / Double(N)
            }
        }
        self.cosines = cosines
        // The periodic Hann window of win_length samples (centred in n_fft, as the STFT pads it).
        let W = mel.winLength
        let windowEnergy = (0..<W).map { n in pow(0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(W)), 2) }.reduce(0, +)
        let step = 2 / (pow(2, Double(bits)) - 1)
        noisePower = windowEnergy * step * step / 12
        logScalePerRMS = log(3.0.squareRoot() / (Double.pi * windowEnergy.squareRoot()))
        logDeviationPerRMS = -0.5 * log(windowEnergy)
        floorLevel = Float(log(mel.logFloor)) + 1e-6
    }

    /// Per-frame predictors of a raw log-mel (nMels, F), row-major: `coefficients` (F, order)
    /// receives a_1...a_P and `logRMS` (F) ln sqrt(E).
    public func analyse(logMel: UnsafePointer<Float>, frames F: Int, coefficients: UnsafeMutablePointer<Float>, logRMS: UnsafeMutablePointer<Float>) {
        let C = mel.nMels, P = order
        var column = [Double](repeating: 0, count: C), power = [Double](repeating: 0, count: bins)
        var r = [Double](repeating: 0, count: P + 1), a = [Double](repeating: 0, count: P + 1), previous = a
        for f in 0..<F {
            for c in 0..<C {
                let v = logMel[c * F + f]
                column[c] = v <= floorLevel ? 0 : Double(exp(v))
            }
            for j in 0..<bins {
                var s = 0.0
                let row = j * C
                for c in 0..<C { s += inverse[row + c] * column[c] }
                s = max(s, 0)
                power[j] = (mel.power == 2 ? s : s * s) + noisePower
            }
            for k in 0...P {
                var sum = 0.0
                let row = k * bins
                for j in 0..<bins { sum += cosines[row + j] * power[j] }
                r[k] = sum
            }
            let error = Self.levinson(r, order: P, a: &a, scratch: &previous)
            for k in 0..<P { coefficients[f * P + k] = Float(a[k + 1]) }
            logRMS[f] = Float(0.5 * log(error))
        }
    }

    /// Levinson-Durbin on autocorrelations r_0...r_P: a_0 = 1, a_1...a_P into `a`; returns the
    /// final prediction-error power E. The noise floor keeps r_0 > 0 and every reflection
    /// coefficient below 1 in magnitude.
    static func levinson(_ r: [Double], order P: Int, a: inout [Double], scratch: inout [Double]) -> Double {
        for k in 0...P { a[k] = 0 }
        a[0] = 1
        var error = r[0]
        for i in 1...P {
            var acc = r[i]
            for k in 1..<i { acc += a[k] * r[i - k] }
            let reflection = -acc / error
            for k in 0...P { scratch[k] = a[k] }
            for k in 1..<i { a[k] = scratch[k] + reflection * scratch[i - k] }
            a[i] = reflection
            error *= 1 - reflection * reflection
        }
        return error
    }

    /// The frame whose predictor sample t uses: the nearest frame centre.
    @inline(__always)
    public func frame(ofSample t: Int, frames F: Int) -> Int { min(F - 1, (t + mel.hopLength / 2) / mel.hopLength) }

    /// p_t = -sum_k a_k x_(t-k) for t in 0..<T (x before 0 is 0), each sample with its frame's
    /// coefficients (F, order).
    public func predict(_ x: UnsafePointer<Float>, length T: Int, coefficients: UnsafePointer<Float>, frames F: Int,
                        into p: UnsafeMutablePointer<Float>) {
        let P = order
        guard T > 0 else { return }
        p[0] = 0
        for t in 1..<T {
            let a = coefficients + frame(ofSample: t, frames: F) * P
            var sum: Float = 0
            for k in 1...min(P, t) { sum -= a[k - 1] * x[t - k] }
            p[t] = sum
        }
    }

    /// The synthesis filter 1 / A(z): x_t = e_t - sum_k a_k x_(t-k), in place over T samples.
    /// Its Jacobian is unit lower-triangular, so densities of e and of x agree. The recursion
    /// runs in double precision: near a sharp resonance (pole radii reach 0.9996 on speech) it
    /// amplifies the rounding of its own past outputs, which in single precision reached 9
    /// steps of 16-bit audio.
    public func synthesize(_ e: UnsafeMutablePointer<Float>, length T: Int, coefficients: UnsafePointer<Float>, frames F: Int) {
        let P = order
        var history = [Double](repeating: 0, count: T)
        for t in 0..<T {
            var sum = Double(e[t])
            if t > 0 {
                let a = coefficients + frame(ofSample: t, frames: F) * P
                for k in 1...min(P, t) { sum -= Double(a[k - 1]) * history[t - k] }
            }
            history[t] = sum
            e[t] = Float(sum)
        }
    }

    /// The synthesis filter's backward pass, in place: given dL/dx (T), the gradient with
    /// respect to e, G_t = dL/dx_t - sum_k a_k(t + k) G_(t+k), a reverse scan (in double
    /// precision, as the filter).
    public func synthesizeBackward(_ g: UnsafeMutablePointer<Float>, length T: Int, coefficients: UnsafePointer<Float>, frames F: Int) {
        let P = order
        var history = [Double](repeating: 0, count: T)
        var t = T - 1
        while t >= 0 {
            var sum = Double(g[t])
            for k in 1...P where t + k < T {
                sum -= Double(coefficients[frame(ofSample: t + k, frames: F) * P + k - 1]) * history[t + k]
            }
            history[t] = sum
            g[t] = Float(sum)
            t -= 1
        }
    }
}
