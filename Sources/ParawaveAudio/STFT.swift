import Foundation
import ParawaveCore

/// Short-time Fourier transform with librosa's conventions, through FFTW.
///
/// Frame f covers padded samples [f*hop, f*hop + nFFT), multiplied by a periodic Hann
/// window of `winLength` centred in nFFT. With `center`, the signal is first padded by
/// nFFT/2 on each side by reflection (numpy's `reflect`, repeated for short signals), so
/// frames = 1 + floor(T / hop). Spectra are (F, nFFT/2 + 1, 2) interleaved complex.
/// Transforms run in double precision (see `RealFFT`); results are returned as Float32.
public final class STFT: @unchecked Sendable {
    public let nFFT: Int
    public let hopLength: Int
    public let winLength: Int
    public let center: Bool
    /// The analysis window zero-padded to nFFT, (nFFT).
    public let window: [Float]
    private let window64: [Double]
    /// One FFT per worker thread, made once.
    private let ffts: [RealFFT<Double>]

    public init(nFFT: Int, hopLength: Int, winLength: Int? = nil, center: Bool = true) {
        let winLength = winLength ?? nFFT
        precondition(nFFT >= 2 && hopLength >= 1 && winLength >= 1 && winLength <= nFFT, "invalid STFT settings")
        self.nFFT = nFFT
        self.hopLength = hopLength
        self.winLength = winLength
        self.center = center
        self.window = Self.hannWindow(length: winLength, paddedTo: nFFT).map(Float.init)
        self.window64 = Self.hannWindow(length: winLength, paddedTo: nFFT)
        self.ffts = (0..<max(1, Parallel.threads)).map { _ in RealFFT<Double>(size: nFFT) }
    }

    /// Number of complex bins per frame, nFFT/2 + 1.
    public var bins: Int { nFFT / 2 + 1 }

    /// Periodic Hann window, w[n] = 0.5 - 0.5 cos(2 pi n / L), centred in `paddedTo` zeros.
    public static func hannWindow(length: Int, paddedTo size: Int) -> [Double] {
        var window = [Double](repeating: 0, count: size)
        let offset = (size - length) / 2
        for n in 0..<length {
            window[offset + n] = 0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(length))
        }
        return window
    }

    /// Frames produced for a signal of `samples` samples.
    public func frameCount(samples: Int) -> Int {
        if center { return 1 + samples / hopLength }
        return samples >= nFFT ? 1 + (samples - nFFT) / hopLength : 0
    }

    /// The signal as the frames see it: reflect-padded by nFFT/2 when `center`.
    public func padded(_ signal: [Float]) -> [Float] {
        guard center else { return signal }
        return Self.reflectPad(signal, by: nFFT / 2)
    }

    /// numpy's `np.pad(x, pad, mode="reflect")`: the mirror image without repeating the
    /// edge sample, continued periodically (period 2(T-1)) when `pad` exceeds the signal.
    public static func reflectPad(_ x: [Float], by pad: Int) -> [Float] {
        let n = x.count
        guard n > 0 else { return [Float](repeating: 0, count: 2 * pad) }
        var out = [Float](repeating: 0, count: n + 2 * pad)
        out.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { src in
                (o.baseAddress! + pad).update(from: src.baseAddress!, count: n)
                let period = 2 * (n - 1)
                func mirrored(_ j: Int) -> Float {
                    if n == 1 { return src[0] }
                    var m = j % period
                    if m < 0 { m += period }
                    return src[m < n ? m : period - m]
                }
                for i in 0..<pad { o[i] = mirrored(i - pad) }
                for i in (pad + n)..<(n + 2 * pad) { o[i] = mirrored(i - pad) }
            }
        }
        return out
    }

    /// Number of worker threads `forEachFrame` may use; its `worker` argument is below this.
    public var workers: Int { ffts.count }

    /// Calls `body(worker, frame, spectrum)` for every frame, frames split over worker threads
    /// (`worker` in 0..<workers identifies the calling thread's share, for scratch buffers).
    /// `spectrum` points at (nFFT/2 + 1, 2) interleaved values valid during the call.
    public func forEachFrame(of signal: [Float], _ body: (Int, Int, UnsafePointer<Double>) -> Void) {
        let x = padded(signal)
        let frames = frameCount(samples: signal.count)
        let n = nFFT
        let hop = hopLength
        x.withUnsafeBufferPointer { xp in
            window64.withUnsafeBufferPointer { wp in
                let chunks = min(ffts.count, max(1, frames / 16))
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let fft = ffts[c]
                    for f in (frames * c / chunks)..<(frames * (c + 1) / chunks) {
                        let frame = xp.baseAddress! + f * hop
                        for i in 0..<n { fft.real[i] = Double(frame[i]) * wp[i] }
                        fft.forward()
                        body(c, f, fft.complex)
                    }
                }
            }
        }
    }

    /// Complex spectrogram, (F, nFFT/2 + 1, 2).
    public func forward(_ signal: [Float]) -> [Float] {
        let frames = frameCount(samples: signal.count)
        let stride = 2 * bins
        var out = [Float](repeating: 0, count: frames * stride)
        out.withUnsafeMutableBufferPointer { op in
            let base = op.baseAddress!
            forEachFrame(of: signal) { _, f, spectrum in
                for i in 0..<stride { base[f * stride + i] = Float(spectrum[i]) }
            }
        }
        return out
    }

    /// |X|^power, (F, nFFT/2 + 1).
    public func magnitude(_ signal: [Float], power: Float = 1) -> [Float] {
        let frames = frameCount(samples: signal.count)
        let bins = self.bins
        var out = [Float](repeating: 0, count: frames * bins)
        var scratch = [Double](repeating: 0, count: workers * bins)
        out.withUnsafeMutableBufferPointer { op in
            scratch.withUnsafeMutableBufferPointer { sp in
                let base = op.baseAddress!, scratchBase = sp.baseAddress!
                forEachFrame(of: signal) { worker, f, spectrum in
                    let row = scratchBase + worker * bins
                    Self.magnitudes(spectrum, into: row, bins: bins, power: Double(power))
                    for k in 0..<bins { base[f * bins + k] = Float(row[k]) }
                }
            }
        }
        return out
    }

    /// Writes |X[k]|^power for k in 0..<bins.
    @inline(__always)
    static func magnitudes(_ spectrum: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>, bins: Int, power: Double) {
        if power == 2 {
            for k in 0..<bins { out[k] = spectrum[2 * k] * spectrum[2 * k] + spectrum[2 * k + 1] * spectrum[2 * k + 1] }
        } else if power == 1 {
            for k in 0..<bins { out[k] = (spectrum[2 * k] * spectrum[2 * k] + spectrum[2 * k + 1] * spectrum[2 * k + 1]).squareRoot() }
        } else {
            for k in 0..<bins { out[k] = pow((spectrum[2 * k] * spectrum[2 * k] + spectrum[2 * k + 1] * spectrum[2 * k + 1]).squareRoot(), power) }
        }
    }

    /// Inverse STFT by weighted overlap-add (librosa's `istft`): each frame's c2r output / nFFT
    /// is windowed and added at f*hop, the sum is divided by the summed squared window where
    /// that exceeds the smallest normal float, and with `center` nFFT/2 samples are dropped
    /// from the front. The result has `length` samples (default hop*(F-1) when centred).
    public func inverse(_ spectrogram: [Float], frames: Int, length: Int? = nil) -> [Float] {
        let stride = 2 * bins
        precondition(spectrogram.count == frames * stride, "spectrogram size does not match frames")
        let n = nFFT
        let full = n + hopLength * max(frames - 1, 0)
        var y = [Float](repeating: 0, count: full)
        var norm = [Float](repeating: 0, count: full)
        let fft = ffts[0]
        let scale = 1 / Float(n)
        for f in 0..<frames {
            for i in 0..<stride { fft.complex[i] = Double(spectrogram[f * stride + i]) }
            fft.inverse()
            let start = f * hopLength
            for i in 0..<n {
                y[start + i] += Float(fft.real[i] * window64[i]) * scale
                norm[start + i] += window[i] * window[i]
            }
        }
        let tiny = Float.leastNormalMagnitude
        for i in 0..<full where norm[i] > tiny { y[i] /= norm[i] }
        let offset = center ? n / 2 : 0
        let outLength = length ?? (center ? hopLength * max(frames - 1, 0) : full)
        var out = [Float](repeating: 0, count: outLength)
        for i in 0..<outLength where offset + i < full { out[i] = y[offset + i] }
        return out
    }
}
