import CSoxr
import ParawaveCore

/// Sample-rate conversion through libsoxr at its high-quality setting
/// (`SOXR_HQ`: 20-bit precision, pass band to 91% of Nyquist, linear phase).
///
/// The output has `round(T * out / in)` samples and is aligned with the input in time.
public enum Resampler {
    /// Converts `audio` to `sampleRate`; returns it unchanged when the rates agree.
    public static func resample(_ audio: Audio, to sampleRate: Int) throws -> Audio {
        guard sampleRate > 0, audio.sampleRate > 0 else {
            throw ParawaveError("resample", "invalid sample rates \(audio.sampleRate) -> \(sampleRate)")
        }
        if audio.sampleRate == sampleRate || audio.samples.isEmpty { return audio }
        let ratio = Double(sampleRate) / Double(audio.sampleRate)
        let outputLength = Int((Double(audio.samples.count) * ratio).rounded())
        var output = [Float](repeating: 0, count: max(outputLength, 0))
        var ioSpec = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        var qualitySpec = soxr_quality_spec(UInt(SOXR_HQ), 0)
        var done = 0
        let error = audio.samples.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                soxr_oneshot(Double(audio.sampleRate), Double(sampleRate), 1,
                             input.baseAddress, audio.samples.count, nil,
                             out.baseAddress, outputLength, &done,
                             &ioSpec, &qualitySpec, nil)
            }
        }
        if let error {
            throw ParawaveError("resample", "libsoxr failed: \(String(cString: error))")
        }
        if done < outputLength { output.removeSubrange(done...) }
        return Audio(samples: output, sampleRate: sampleRate)
    }
}
