import CFFTW
import Foundation
import ParawaveCore

/// Spectral distance between generated audio x and real audio y, with its gradient through the STFT.
///
/// Kinds, with P = |X|^2 for frame f and bin k of the normalised spectrum X below:
/// - `power` (Parallel WaveNet's power loss): L = mean_{b,k} (mean_f P_x - mean_f P_y)^2.
/// - `magnitude`: the same with |X| = sqrt(P + 1e-7) in place of P.
/// - `multiResolution` (Parallel WaveGAN's): per resolution, with |X| = sqrt(max(P, 1e-7)),
///   SC = ||(|Y| - |X|)||_F / ||Y||_F over the whole (B, F, K) tensor, plus the log-magnitude
///   term mean_{b,f,k} |log|Y| - log|X||; L is the average over resolutions of (SC + log term).
///
/// Every STFT: a periodic Hann window of `winLength` centred in nFFT (`STFT.hannWindow`); the
/// signal zero-padded by nFFT/2 on each side, so frames F = 1 + T/hop and frame f covers
/// padded samples [f*hop, f*hop + nFFT) (torch.stft with center=True, pad_mode="constant");
/// X = r2c(window * frame) / sqrt(sum window^2), so white noise of variance v has E|X_k|^2 = v
/// in every bin at every FFT size.
///
/// Gradient: for one frame, u the windowed frame, R = r2c(u) (unnormalised), s^2 = 1 / sum
/// window^2, P_k = s^2 |R_k|^2 and g_k = dL/dP_k (real),
///
///     dL/du_n = s^2 sum_{k=0}^{N/2} 2 g_k Re(R_k e^{2 pi i k n / N}) = s^2 c2r(Z)[n],
///     Z_k = c_k g_k R_k,  c_0 = c_{N/2} = 2, c_k = 1 otherwise,
///
/// because FFTW's unnormalised c2r counts every interior bin twice (as k and N - k) and the
/// two edge bins once. dL/dx then receives window_n * dL/du_n overlap-added at f*hop, with the
/// padding dropped.
///
/// Transforms are single-precision FFTW (r2c forward, c2r backward, FFTW_ESTIMATE): rounding
/// is about 1e-7 of a frame's energy, far below the noise of a training step. It is largest,
/// relatively, in bins where |X| is small, which the log-magnitude term's gradient (1/|X|)
/// weighs most: there a sample's gradient can be off by about 1e-3 relative, as in PyTorch's
/// float32 STFT. Sums over bins and frames are Float64.
/// Frames are split over `threads` workers, each with its own plans and buffers; every frame,
/// every reduction and every output sample is computed in a fixed order, so results are
/// bit-identical whatever the thread count. An instance is used by one thread at a time.
public final class SpectralLoss: @unchecked Sendable {
    /// The distance; raw values are the names recipes use.
    public enum Kind: String, Sendable, CaseIterable {
        case power, magnitude
        case multiResolution = "multi_resolution"
    }

    /// One STFT's settings, in samples: FFT size (even), hop, and periodic Hann window length.
    public struct Resolution: Equatable, Sendable {
        public var nFFT: Int
        public var hop: Int
        public var winLength: Int

        public init(nFFT: Int, hop: Int, winLength: Int) {
            self.nFFT = nFFT
            self.hop = hop
            self.winLength = winLength
        }
    }

    /// Floor on P: under sqrt for `magnitude` (added) and `multiResolution` (max).
    public static let powerFloor = 1e-7

    public let kind: Kind
    /// The resolutions in use: only the first one given for `power` and `magnitude`.
    public let resolutions: [Resolution]
    /// Worker threads for the per-frame and per-sample loops.
    public let threads: Int
    private let analyses: [FrameAnalysis]

    /// `power` and `magnitude` use `resolutions[0]`; `threads` defaults to `Parallel.threads`.
    public init(kind: Kind, resolutions: [Resolution], threads: Int? = nil) {
        precondition(!resolutions.isEmpty, "a spectral loss needs at least one resolution")
        self.kind = kind
        self.resolutions = kind == .multiResolution ? resolutions : [resolutions[0]]
        self.threads = max(1, threads ?? Parallel.threads)
        analyses = self.resolutions.map { [threads = self.threads] in FrameAnalysis($0, workers: threads) }
    }

    /// power and magnitude: one 1024-point STFT, hop 256; multi-resolution: Parallel WaveGAN's
    /// three (nFFT, hop, window) = (1024, 120, 600), (2048, 240, 1200), (512, 50, 240).
    public static func defaultResolutions(kind: Kind) -> [Resolution] {
        switch kind {
        case .power, .magnitude:
            return [Resolution(nFFT: 1024, hop: 256, winLength: 1024)]
        case .multiResolution:
            return [Resolution(nFFT: 1024, hop: 120, winLength: 600), Resolution(nFFT: 2048, hop: 240, winLength: 1200),
                    Resolution(nFFT: 512, hop: 50, winLength: 240)]
        }
    }

    /// Loss of generated x against real y, both (B, T) row-major; when `dX` (B, T) is given,
    /// adds weight * dL/dx into it. Returns the unweighted loss. With a `shard` the B rows are
    /// part of a larger batch (data parallelism): the loss is the whole batch's (its sums formed
    /// over the parts by `shard.sum`) and the gradient is its gradient with respect to these rows.
    public func evaluate(x: UnsafePointer<Float>, y: UnsafePointer<Float>, batch: Int, length: Int,
                         dX: UnsafeMutablePointer<Float>?, weight: Float, shard: BatchShard? = nil) -> Double {
        precondition(batch >= 1 && length >= 1, "a spectral loss needs at least one sample per utterance")
        let shard = shard ?? .whole(batch)
        precondition(shard.count == batch, "the shard must describe these rows")
        let share = 1 / Double(analyses.count)
        var loss = 0.0
        for analysis in analyses {
            loss += share * evaluate(analysis, x: x, y: y, batch: batch, length: length, dX: dX, weight: weight * Float(share), shard: shard)
        }
        return loss
    }

    /// One resolution's term: STFT of x and y, the loss, and (with `dX`) the backward pass.
    private func evaluate(_ a: FrameAnalysis, x: UnsafePointer<Float>, y: UnsafePointer<Float>, batch: Int, length: Int,
                          dX: UnsafeMutablePointer<Float>?, weight: Float, shard: BatchShard) -> Double {
        let frames = a.frameCount(length), bins = a.bins, items = batch * frames
        let powerX = zeroed(Double.self, items * bins), powerY = zeroed(Double.self, items * bins)   // (B, F, K)
        let partials = zeroed(Double.self, items * SpectralHead.partialCount)                          // (B, F, 3)
        let spectra = zeroed(Float.self, dX == nil ? 0 : items * 2 * bins)                             // (B, F, K, 2): r2c of x's frames
        defer { powerX.deallocate(); powerY.deallocate(); partials.deallocate(); spectra.deallocate() }
        let kind = self.kind
        a.forEachFrame(items, threads: threads) { worker, item in
            let b = item / frames, f = item % frames
            let px = powerX + item * bins, py = powerY + item * bins
            a.analyse(worker, signal: x + b * length, length: length, frame: f, power: px)
            if dX != nil { (spectra + item * 2 * bins).update(from: worker.complex, count: 2 * bins) }
            a.analyse(worker, signal: y + b * length, length: length, frame: f, power: py)
            SpectralHead.framePartials(kind, px: px, py: py, bins: bins, into: partials + item * SpectralHead.partialCount)
        }
        let head = SpectralHead(kind: kind, batch: batch, frames: frames, bins: bins, px: powerX, py: powerY, partials: partials, shard: shard)
        guard let dX else { return head.loss }

        let span = a.winLength
        let frameGradients = zeroed(Float.self, items * span)   // (B, F, winLength): dL/dx at padded f*hop + windowStart + m
        defer { frameGradients.deallocate() }
        a.forEachFrame(items, threads: threads) { worker, item in
            head.upstream(px: powerX + item * bins, py: powerY + item * bins, utterance: item / frames, into: worker.upstream)
            a.backpropagate(worker, spectrum: spectra + item * 2 * bins, into: frameGradients + item * span)
        }
        a.overlapAdd(frameGradients, batch: batch, length: length, frames: frames, weight: weight, into: dX, threads: threads)
        return head.loss
    }

    /// The same loss in Float64 by a direct DFT of every frame (no FFT, one thread): the
    /// reference that the FFT path is tested against.
    public func referenceLoss(x: [Double], y: [Double], batch: Int, length: Int) -> Double {
        precondition(x.count == batch * length && y.count == batch * length, "signals must be (B, T)")
        var loss = 0.0
        for a in analyses {
            let frames = a.frameCount(length), bins = a.bins, items = batch * frames
            var px = [Double](repeating: 0, count: items * bins), py = px   // (B, F, K)
            var partials = [Double](repeating: 0, count: items * SpectralHead.partialCount)
            for item in 0..<items {
                let b = item / frames, f = item % frames
                a.analyseDirect(x[b * length..<(b + 1) * length], frame: f, power: &px, at: item * bins)
                a.analyseDirect(y[b * length..<(b + 1) * length], frame: f, power: &py, at: item * bins)
                px.withUnsafeBufferPointer { p in
                    py.withUnsafeBufferPointer { q in
                        partials.withUnsafeMutableBufferPointer { out in
                            SpectralHead.framePartials(kind, px: p.baseAddress! + item * bins, py: q.baseAddress! + item * bins,
                                                       bins: bins, into: out.baseAddress! + item * SpectralHead.partialCount)
                        }
                    }
                }
            }
            let head = SpectralHead(kind: kind, batch: batch, frames: frames, bins: bins, px: px, py: py, partials: partials, shard: .whole(batch))
            loss += head.loss / Double(analyses.count)
        }
        return loss
    }
}

/// The loss as a function of the frame powers P_x, P_y (B, F, K), and its gradient dL/dP_x.
private struct SpectralHead {
    let kind: SpectralLoss.Kind
    /// Rows here, and in the whole batch the loss is over (more under data parallelism).
    let batch: Int, frames: Int, bins: Int, totalBatch: Int
    /// Frame-averaged kinds: mean_f v(P_x) - mean_f v(P_y), (B, K), v = P or sqrt(P + floor).
    var meanDifference: [Double] = []
    /// Multi-resolution: ||(|Y| - |X|)||_F and ||Y||_F.
    var differenceNorm = 0.0, targetNorm = 0.0
    /// The loss.
    var loss = 0.0

    /// Per-frame sums for multi-resolution: sum (|Y| - |X|)^2, sum |Y|^2, sum |log(|Y| / |X|)|.
    static let partialCount = 3

    @inline(__always)
    static func clampedMagnitude(_ p: Double) -> Double { max(p, SpectralLoss.powerFloor).squareRoot() }

    static func framePartials(_ kind: SpectralLoss.Kind, px: UnsafePointer<Double>, py: UnsafePointer<Double>, bins: Int,
                              into out: UnsafeMutablePointer<Double>) {
        guard kind == .multiResolution else { return }
        var difference = 0.0, target = 0.0, logDifference = 0.0
        for k in 0..<bins {
            let mx = clampedMagnitude(px[k]), my = clampedMagnitude(py[k])
            difference += (my - mx) * (my - mx)
            target += my * my
            logDifference += abs(log(my / mx))
        }
        out[0] = difference
        out[1] = target
        out[2] = logDifference
    }

    /// The loss from the powers and the per-frame partials (`framePartials`), summed in a fixed
    /// order, keeping what `upstream` needs.
    init(kind: SpectralLoss.Kind, batch: Int, frames: Int, bins: Int,
         px: UnsafePointer<Double>, py: UnsafePointer<Double>, partials: UnsafePointer<Double>, shard: BatchShard) {
        self.kind = kind
        self.batch = batch
        totalBatch = shard.total
        self.frames = frames
        self.bins = bins
        let items = batch * frames
        switch kind {
        case .power, .magnitude:
            let floor = SpectralLoss.powerFloor, isPower = kind == .power
            meanDifference = [Double](repeating: 0, count: batch * bins)
            for item in 0..<items {
                let b = item / frames
                for k in 0..<bins {
                    let p = px[item * bins + k], q = py[item * bins + k]
                    meanDifference[b * bins + k] += isPower ? p - q : (p + floor).squareRoot() - (q + floor).squareRoot()
                }
            }
            var sum = 0.0
            for i in meanDifference.indices {
                meanDifference[i] /= Double(frames)
                sum += meanDifference[i] * meanDifference[i]
            }
            if !shard.isWhole { sum = shard.sum(sum) }
            loss = sum / Double(totalBatch * bins)
        case .multiResolution:
            var difference = 0.0, target = 0.0, logDifference = 0.0
            for item in 0..<items {
                difference += partials[3 * item]
                target += partials[3 * item + 1]
                logDifference += partials[3 * item + 2]
            }
            if !shard.isWhole {
                let sums = shard.sum([difference, target, logDifference])
                (difference, target, logDifference) = (sums[0], sums[1], sums[2])
            }
            differenceNorm = difference.squareRoot()
            targetNorm = target.squareRoot()
            loss = differenceNorm / targetNorm + logDifference / Double(totalBatch * frames * bins)
        }
    }

    /// g_k = dL/dP_x[b, f, k] for one frame of utterance b, (K).
    func upstream(px: UnsafePointer<Double>, py: UnsafePointer<Double>, utterance b: Int, into g: UnsafeMutablePointer<Double>) {
        switch kind {
        case .power, .magnitude:
            // dL/dmean_f v = 2 d / (B K), shared by the F frames; dv/dP = 1 or 1 / (2 v).
            let scale = 2 / Double(totalBatch * bins * frames)
            for k in 0..<bins {
                let d = scale * meanDifference[b * bins + k]
                g[k] = kind == .power ? d : d / (2 * (px[k] + SpectralLoss.powerFloor).squareRoot())
            }
        case .multiResolution:
            // dSC/d|X| = (|X| - |Y|) / (||Y - X|| ||Y||) (zero when |X| = |Y| everywhere);
            // dlog-term/d|X| = sign(|X| - |Y|) / (|X| BFK); d|X|/dP = 1 / (2|X|) above the floor.
            let convergence = differenceNorm > 0 ? 1 / (differenceNorm * targetNorm) : 0
            let count = Double(totalBatch * frames * bins)
            for k in 0..<bins {
                guard px[k] > SpectralLoss.powerFloor else { g[k] = 0; continue }
                let mx = px[k].squareRoot(), my = Self.clampedMagnitude(py[k])
                let sign: Double = mx > my ? 1 : (mx < my ? -1 : 0)
                g[k] = ((mx - my) * convergence + sign / (mx * count)) / (2 * mx)
            }
        }
    }
}

/// One resolution's framing and window, the STFT forward (`analyse`) and its backward
/// (`backpropagate`, `overlapAdd`), and one `FrameWorker` per thread.
private final class FrameAnalysis {
    let nFFT: Int, hop: Int, winLength: Int
    var bins: Int { nFFT / 2 + 1 }
    /// Periodic Hann window of winLength centred in nFFT zeros, (nFFT), in Float32 and Float64.
    let window: [Float]
    private let window64: [Double]
    /// Start of the window's support, (nFFT - winLength) / 2.
    let windowStart: Int
    /// s^2 = 1 / sum window^2 (in Float64 from the Float64 window).
    let normalisation: Double
    private let workers: [FrameWorker]

    init(_ r: SpectralLoss.Resolution, workers: Int) {
        precondition(r.nFFT >= 2 && r.nFFT % 2 == 0 && r.hop >= 1 && r.winLength >= 1 && r.winLength <= r.nFFT,
                     "invalid spectral-loss resolution \(r): nFFT must be even, hop at least 1, winLength in 1...nFFT")
        nFFT = r.nFFT
        hop = r.hop
        winLength = r.winLength
        window64 = STFT.hannWindow(length: r.winLength, paddedTo: r.nFFT)
        window = window64.map(Float.init)
        windowStart = (r.nFFT - r.winLength) / 2
        normalisation = 1 / window64.reduce(0) { $0 + $1 * $1 }
        self.workers = (0..<workers).map { _ in FrameWorker(size: r.nFFT) }
    }

    /// F = 1 + T / hop.
    func frameCount(_ length: Int) -> Int { 1 + length / hop }

    /// Calls `body(worker, item)` for items 0..<count in contiguous runs, one run per worker.
    func forEachFrame(_ count: Int, threads: Int, _ body: (FrameWorker, Int) -> Void) {
        forEachRun(count, threads: min(threads, workers.count), minimum: 4) { run, range in
            for item in range { body(workers[run], item) }
        }
    }

    /// power <- s^2 |R|^2, (K), with R = r2c(window * frame f of the zero-padded signal (T)),
    /// left in `worker.complex`.
    func analyse(_ worker: FrameWorker, signal: UnsafePointer<Float>, length: Int, frame f: Int, power: UnsafeMutablePointer<Double>) {
        let start = f * hop - nFFT / 2   // signal index of the frame's first sample
        let lo = max(windowStart, -start), hi = max(lo, min(windowStart + winLength, length - start))
        let real = worker.real
        real.update(repeating: 0, count: nFFT)
        for n in lo..<hi { real[n] = window[n] * signal[start + n] }
        worker.forward()
        let c = worker.complex
        for k in 0..<bins {
            let re = Double(c[2 * k]), im = Double(c[2 * k + 1])
            power[k] = normalisation * (re * re + im * im)
        }
    }

    /// Frame f's dL/dx at padded samples f*hop + windowStart + m, (winLength):
    /// window * s^2 c2r(Z), Z_k = c_k g_k R_k, from R = `spectrum` (K, 2) and g = `worker.upstream`.
    func backpropagate(_ worker: FrameWorker, spectrum r: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let g = worker.upstream, z = worker.complex
        for k in 0..<bins {
            // c2r sums bins 1..<N/2 twice (k and N - k), the edge bins once.
            let scale = (k == 0 || k == nFFT / 2 ? 2 : 1) * normalisation * g[k]
            z[2 * k] = Float(scale * Double(r[2 * k]))
            z[2 * k + 1] = Float(scale * Double(r[2 * k + 1]))
        }
        worker.inverse()
        for m in 0..<winLength { out[m] = worker.real[windowStart + m] * window[windowStart + m] }
    }

    /// dX[b, t] += weight * the sum, over frames f ascending, of frame gradients (B, F, winLength)
    /// at t's padded position; the padding's gradients are dropped.
    func overlapAdd(_ frameGradients: UnsafePointer<Float>, batch: Int, length: Int, frames: Int, weight: Float,
                    into dX: UnsafeMutablePointer<Float>, threads: Int) {
        let span = winLength, shift = nFFT / 2 - windowStart
        forEachRun(batch * length, threads: threads, minimum: 4096) { _, range in
            for i in range {
                let b = i / length, j = i % length + shift   // j: position from the start of frame 0's window support
                // Frame f covers j when f*hop <= j < f*hop + winLength.
                let first = j >= span ? (j - span) / hop + 1 : 0, last = min(frames - 1, j / hop)
                guard first <= last else { continue }
                let rows = frameGradients + b * frames * span
                var sum = 0.0
                for f in first...last { sum += Double(rows[f * span + j - f * hop]) }
                dX[i] += weight * Float(sum)
            }
        }
    }

    /// `power[offset + k]` <- s^2 |sum_n window_n x_pad[f*hop + n] e^{-2 pi i k n / N}|^2 for
    /// k in 0..<K, by a direct DFT in Float64.
    func analyseDirect(_ signal: ArraySlice<Double>, frame f: Int, power: inout [Double], at offset: Int) {
        let start = f * hop - nFFT / 2
        let u: [Double] = (0..<nFFT).map { n in
            let t = start + n
            return t >= 0 && t < signal.count ? window64[n] * signal[signal.startIndex + t] : 0
        }
        let angle = 2 * Double.pi / Double(nFFT)
        for k in 0..<bins {
            var re = 0.0, im = 0.0
            for n in 0..<nFFT where u[n] != 0 {
                let phase = angle * Double((k * n) % nFFT)
                re += u[n] * cos(phase)
                im -= u[n] * sin(phase)
            }
            power[offset + k] = normalisation * (re * re + im * im)
        }
    }
}

/// One worker thread's single-precision FFT (`RealFFT<Float>`: `real` (N), `complex`
/// (N/2 + 1, 2)) and the gradient of the frame it backpropagates.
private final class FrameWorker {
    let fft: RealFFT<Float>
    var real: UnsafeMutablePointer<Float> { fft.real }
    var complex: UnsafeMutablePointer<Float> { fft.complex }
    /// dL/dP of the frame being backpropagated, (N/2 + 1).
    let upstream: UnsafeMutablePointer<Double>

    init(size: Int) {
        fft = RealFFT<Float>(size: size)
        upstream = .allocate(capacity: size / 2 + 1)
    }

    deinit { upstream.deallocate() }

    @inline(__always) func forward() { fft.forward() }
    @inline(__always) func inverse() { fft.inverse() }
}

/// Calls `body(run, range)` over 0..<count split into at most `threads` contiguous runs of at
/// least `minimum` items, in parallel when there is more than one.
private func forEachRun(_ count: Int, threads: Int, minimum: Int, _ body: (Int, Range<Int>) -> Void) {
    guard count > 0 else { return }
    let runs = max(1, min(threads, count / minimum))
    if runs == 1 { return body(0, 0..<count) }
    DispatchQueue.concurrentPerform(iterations: runs) { run in
        body(run, (count * run / runs)..<(count * (run + 1) / runs))
    }
}

/// A zero-filled buffer of `count` values (at least one), freed by the caller.
private func zeroed<T: Numeric>(_ type: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
    let buffer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
    buffer.initialize(repeating: 0, count: max(count, 1))
    return buffer
}
