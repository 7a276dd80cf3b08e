import ParawaveCore

/// How audio becomes the vocoder's input features.
///
/// The defaults are the Tacotron 2 / WaveGlow / HiFi-GAN convention at 16 kHz: n_fft 1024,
/// hop 256, Hann window 1024 (periodic), centred frames with reflect padding, 80 Slaney mel
/// bands with Slaney area normalisation from 0 to 8000 Hz, magnitude (power 1), and the
/// feature ln(max(mel, 1e-5)).
public struct MelSettings: Codable, Equatable, Hashable, Sendable {
    public var sampleRate: Int = 16000
    public var nFFT: Int = 1024
    public var hopLength: Int = 256
    public var winLength: Int = 1024
    public var nMels: Int = 80
    public var fMin: Double = 0
    public var fMax: Double = 8000
    /// HTK mel scale (2595 log10(1 + f/700)) instead of Slaney's.
    public var htk: Bool = false
    /// Slaney area normalisation: each band divided by its width in Hz / 2.
    public var slaneyNorm: Bool = true
    /// Exponent on |STFT| before the filterbank: 1 magnitude, 2 power.
    public var power: Double = 1
    /// Centred frames with reflect padding.
    public var center: Bool = true
    /// The feature is ln(max(mel, logFloor)).
    public var logFloor: Double = 1e-5

    public init() {}

    public init(sampleRate: Int, nFFT: Int = 1024, hopLength: Int = 256, winLength: Int? = nil, nMels: Int = 80,
                fMin: Double = 0, fMax: Double? = nil, htk: Bool = false, slaneyNorm: Bool = true, power: Double = 1) {
        self.sampleRate = sampleRate
        self.nFFT = nFFT
        self.hopLength = hopLength
        self.winLength = winLength ?? nFFT
        self.nMels = nMels
        self.fMin = fMin
        self.fMax = fMax ?? Double(sampleRate) / 2
        self.htk = htk
        self.slaneyNorm = slaneyNorm
        self.power = power
    }

    /// Frames for a signal of `samples` samples: 1 + floor(samples / hop) when centred.
    public func frameCount(samples: Int) -> Int {
        center ? 1 + samples / hopLength : (samples >= nFFT ? 1 + (samples - nFFT) / hopLength : 0)
    }

    /// Whole frames in a training crop of `samples` samples (at least one).
    public func frames(forCrop samples: Int) -> Int { max(1, samples / hopLength) }

    /// The settings that differ from `other`'s, as "hop_length 256 vs 200, fmax 8000.0 vs 3000.0".
    public func differences(from other: MelSettings) -> String {
        let pairs: [(String, String, String)] = [
            ("sample_rate", "\(sampleRate)", "\(other.sampleRate)"), ("n_fft", "\(nFFT)", "\(other.nFFT)"),
            ("hop_length", "\(hopLength)", "\(other.hopLength)"), ("win_length", "\(winLength)", "\(other.winLength)"),
            ("n_mels", "\(nMels)", "\(other.nMels)"), ("fmin", "\(fMin)", "\(other.fMin)"), ("fmax", "\(fMax)", "\(other.fMax)"),
            ("htk", "\(htk)", "\(other.htk)"), ("power", "\(power)", "\(other.power)"), ("log_floor", "\(logFloor)", "\(other.logFloor)"),
            ("center", "\(center)", "\(other.center)"),
        ]
        let differing = pairs.filter { $0.1 != $0.2 }.map { "\($0.0) \($0.1) vs \($0.2)" }
        return differing.isEmpty ? "mel options" : differing.joined(separator: ", ")
    }

    /// Throws one clear error about `path` unless `other` is the same front end: "`mine`'s audio
    /// settings differ from `theirs`'s (the differences); `remedy`". Two parts that meet (data
    /// and recipe, model and data, teacher and student) are checked with it.
    public func requireSame(as other: MelSettings, mine: String, theirs: String, path: String, remedy: String) throws {
        guard self != other else { return }
        throw ParawaveError(path, "\(mine)'s audio settings differ from \(theirs)'s (\(differences(from: other))); \(remedy)")
    }

    /// One line naming every setting, for messages.
    public var summary: String {
        "sample_rate \(sampleRate), n_fft \(nFFT), hop_length \(hopLength), win_length \(winLength), n_mels \(nMels), "
            + "fmin \(fMin), fmax \(fMax)" + (htk ? ", htk" : "") + (power == 2 ? ", power 2" : "")
    }

    /// Problems with the settings, each naming the field; empty when they are usable.
    public func problems() -> [String] {
        var out: [String] = []
        if sampleRate < 1000 || sampleRate > 384_000 { out.append("sample_rate \(sampleRate) is outside 1000...384000") }
        if nFFT < 16 || nFFT > 65536 { out.append("n_fft \(nFFT) is outside 16...65536") }
        if hopLength < 1 || hopLength > nFFT { out.append("hop_length \(hopLength) must be in 1...n_fft (\(nFFT))") }
        if winLength < 1 || winLength > nFFT { out.append("win_length \(winLength) must be in 1...n_fft (\(nFFT))") }
        if nMels < 1 || nMels > 512 { out.append("n_mels \(nMels) is outside 1...512") }
        if fMin < 0 { out.append("fmin \(fMin) must not be negative") }
        if fMax <= fMin { out.append("fmax \(fMax) must exceed fmin \(fMin)") }
        if fMax > Double(sampleRate) / 2 + 1e-9 { out.append("fmax \(fMax) exceeds the Nyquist frequency \(sampleRate / 2)") }
        if power != 1 && power != 2 { out.append("power \(power) must be 1 or 2") }
        if !(logFloor > 0) { out.append("log_floor \(logFloor) must be positive") }
        if out.isEmpty, let empty = MelFilterbank(settings: self).ranges.firstIndex(where: \.isEmpty) {
            out.append("n_mels \(nMels) leaves band \(empty) without an FFT bin at n_fft \(nFFT) (bins \(String(format: "%.1f", Double(sampleRate) / Double(nFFT))) Hz apart): "
                       + "use fewer bands or a larger n_fft")
        }
        return out
    }
}
