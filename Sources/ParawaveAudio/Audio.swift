/// Mono audio: Float32 samples (nominally in [-1, 1]) at a sample rate in Hz.
public struct Audio: Equatable, Sendable {
    /// The samples, (T).
    public var samples: [Float]
    /// Samples per second.
    public var sampleRate: Int

    public init(samples: [Float], sampleRate: Int) {
        self.samples = samples
        self.sampleRate = sampleRate
    }

    /// Length in seconds.
    public var duration: Double { Double(samples.count) / Double(sampleRate) }
}

/// How samples are stored in a written WAV file.
public enum SampleEncoding: String, CaseIterable, Sendable {
    /// 16-bit signed integer PCM: sample * 32768, rounded and clipped to [-32768, 32767].
    case pcm16
    /// 24-bit signed integer PCM: sample * 2^23, rounded and clipped.
    case pcm24
    /// 32-bit IEEE float, unclipped.
    case float32
}
