import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// `audio:` the signal conventions every model and data directory of a recipe shares.
public struct AudioSection: Codable, Equatable, Sendable {
    public var sampleRate = 16000
    public var nFFT = 1024
    public var hopLength = 256
    public var winLength = 1024
    public var nMels = 80
    public var fMin = 0.0
    public var fMax = 8000.0
    /// Quantisation of the teacher's likelihood: 2^bits levels on [-1, 1].
    public var bits = 16

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sampleRate = "sample_rate", nFFT = "n_fft", hopLength = "hop_length", winLength = "win_length"
        case nMels = "n_mels", fMin = "fmin", fMax = "fmax", bits
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&sampleRate, .sampleRate)
        try c.update(&nFFT, .nFFT)
        try c.update(&hopLength, .hopLength)
        // win_length defaults to n_fft, as in librosa.
        winLength = nFFT
        try c.update(&winLength, .winLength)
        try c.update(&nMels, .nMels)
        try c.update(&fMin, .fMin)
        fMax = Double(sampleRate) / 2
        try c.update(&fMax, .fMax)
        try c.update(&bits, .bits)
    }

    /// The mel front end these settings describe (Slaney scale and norm, power 1, log floor 1e-5).
    public var mel: MelSettings {
        MelSettings(sampleRate: sampleRate, nFFT: nFFT, hopLength: hopLength, winLength: winLength, nMels: nMels, fMin: fMin, fMax: fMax)
    }

    func check(_ v: inout RecipeValidator) {
        for problem in mel.problems() {
            let key = String(problem.prefix { $0 != " " })
            v.fail(key, String(problem.dropFirst(key.count + 1)))
        }
        v.require(bits, in: 2...16, "bits")
    }
}

/// `pitch:` the F0 tracker (pYIN) that `prepare`, `pitch` and `evaluate` run, on the mel's
/// frame grid (frames of n_fft samples every hop_length, centred), and the F0 predictor that
/// `train-teacher` trains beside a source-conditioned teacher, so that a mel alone renders.
public struct PitchSection: Codable, Equatable, Sendable {
    /// The F0 search range in Hz (also the predictor's output range).
    public var fMin = 50.0
    public var fMax = 550.0
    /// The predictor's hidden layers (dilations 1, 2, 4, ...); 0 trains no predictor.
    public var predictorLayers = 4
    public var predictorChannels = 64
    /// Odd; the layers are centred, so a frame's prediction sees frames on both sides.
    public var predictorKernelSize = 5
    /// A > 0: each training crop of the predictor is made louder or quieter by up to A dB and
    /// tilted by up to A dB from its lowest band to its highest (uniform draws), so that the
    /// predictor does not learn one corpus's level and microphone; 0 (the default): none.
    public var augmentDB = 0.0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case fMin = "fmin", fMax = "fmax", predictorLayers = "predictor_layers", predictorChannels = "predictor_channels"
        case predictorKernelSize = "predictor_kernel_size", augmentDB = "augment_db"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&fMin, .fMin)
        try c.update(&fMax, .fMax)
        try c.update(&predictorLayers, .predictorLayers)
        try c.update(&predictorChannels, .predictorChannels)
        try c.update(&predictorKernelSize, .predictorKernelSize)
        try c.update(&augmentDB, .augmentDB)
    }

    /// The tracker's settings for audio with these `audio` settings.
    public func settings(audio: AudioSection) -> PitchSettings {
        PitchSettings(sampleRate: audio.sampleRate, frameLength: audio.nFFT, hopLength: audio.hopLength, fMin: fMin, fMax: fMax)
    }

    /// The predictor for mels of `melChannels` bands; nil with `predictor_layers` 0.
    public func predictor(melChannels: Int) -> PitchPredictorConfig? {
        guard predictorLayers > 0 else { return nil }
        return PitchPredictorConfig(melChannels: melChannels, layers: predictorLayers, channels: predictorChannels,
                                    kernelSize: predictorKernelSize, fMin: Float(fMin), fMax: Float(fMax))
    }

    func check(_ v: inout RecipeValidator, audio: AudioSection) {
        v.require(fMin, in: 20...2000, "fmin")
        v.require(fMax, in: 40...4000, "fmax")
        if fMax <= fMin { v.fail("fmax", "must exceed fmin (\(fMin))") }
        v.require(predictorLayers, in: 0...12, "predictor_layers")
        v.require(predictorChannels, in: 1...1024, "predictor_channels")
        v.require(predictorKernelSize, in: 1...15, "predictor_kernel_size")
        v.require(augmentDB, in: 0...24, "augment_db")
        if predictorKernelSize % 2 == 0 { v.fail("predictor_kernel_size", "must be odd (the layers are centred), not \(predictorKernelSize)") }
        guard v.problems.isEmpty else { return }
        for problem in settings(audio: audio).problems() {
            let key = String(problem.prefix { $0 != " " })
            v.fail(key, String(problem.dropFirst(key.count + 1)))
        }
    }
}

/// `data:` where the corpus comes from and how `prepare` splits and cleans it.
public struct DataSection: Codable, Equatable, Sendable {
    /// Folders (or files) searched for audio when `prepare` is given none.
    public var sources: [String] = []
    /// Fraction of utterances held out for validation, chosen by a hash of the id. 1 makes
    /// the whole corpus validation: a data directory only to evaluate on (unseen speakers).
    public var validationFraction = 0.05
    /// Remove leading and trailing silence quieter than `trimDB` below the loudest frame.
    public var trimSilence = true
    public var trimDB = 40.0
    /// Utterances shorter than this (after trimming) are skipped.
    public var minSeconds = 0.25
    /// Longer utterances are cut into pieces of at most this length.
    public var maxSeconds = 30.0
    /// Spectrogram PNGs written for validation utterances spread over the split.
    public var previewImages = 4
    /// Files with more than this fraction of samples at full scale (|x| >= 0.999) are
    /// saturated recordings and are skipped: a vocoder trained on them learns distortion.
    public var maxClippedFraction = 0.001
    /// A regular expression searched in each source file's path; its first capture group (or
    /// the whole match without one) names the utterance's speaker, for speaker-conditioned
    /// models. Empty: the corpus is not split by speaker.
    public var speakerPattern = ""

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sources, validationFraction = "validation_fraction", trimSilence = "trim_silence", trimDB = "trim_db"
        case minSeconds = "min_seconds", maxSeconds = "max_seconds", previewImages = "preview_images"
        case maxClippedFraction = "max_clipped_fraction", speakerPattern = "speaker_pattern"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&sources, .sources)
        try c.update(&validationFraction, .validationFraction)
        try c.update(&trimSilence, .trimSilence)
        try c.update(&trimDB, .trimDB)
        try c.update(&minSeconds, .minSeconds)
        try c.update(&maxSeconds, .maxSeconds)
        try c.update(&previewImages, .previewImages)
        try c.update(&maxClippedFraction, .maxClippedFraction)
        try c.update(&speakerPattern, .speakerPattern)
    }

    /// The compiled `speakerPattern`, nil when it is empty.
    public func speakerExpression() throws -> NSRegularExpression? {
        guard !speakerPattern.isEmpty else { return nil }
        do {
            return try NSRegularExpression(pattern: speakerPattern)
        } catch {
            throw ParawaveError("data.speaker_pattern", "'\(speakerPattern)' is not a valid regular expression")
        }
    }

    /// The speaker `expression` finds in `path`: its first capture group, or the whole match.
    public static func speaker(in path: String, expression: NSRegularExpression) -> String? {
        let range = NSRange(path.startIndex..., in: path)
        guard let match = expression.firstMatch(in: path, range: range) else { return nil }
        let group = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range
        guard let found = Range(group, in: path), !found.isEmpty else { return nil }
        return String(path[found])
    }

    func check(_ v: inout RecipeValidator) {
        v.require(validationFraction, in: 0...1, "validation_fraction")
        v.require(trimDB, in: 10...120, "trim_db")
        v.require(minSeconds, in: 0...60, "min_seconds")
        v.require(maxSeconds, in: 1...3600, "max_seconds")
        if maxSeconds <= minSeconds { v.fail("max_seconds", "must exceed min_seconds (\(minSeconds))") }
        v.require(previewImages, in: 0...1000, "preview_images")
        v.require(maxClippedFraction, in: 0...1, "max_clipped_fraction")
        if !speakerPattern.isEmpty && (try? speakerExpression()) == nil { v.fail("speaker_pattern", "'\(speakerPattern)' is not a valid regular expression") }
    }
}
