import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTestSupport
import Testing

/// pYIN parity with librosa 0.11's `pyin` (`scripts/make_pitch_fixtures.py`, float64 input;
/// sr 16000, frame_length 1024, hop 256, fmin 50, fmax 550).
struct PYINTests {
    static let signals = ["synthetic", "tone", "silence", "noise", "speech_librivox", "speech_codec2", "speech_klettres"]

    static func fixture(_ name: String) throws -> (signal: [Float], f0: [Float], voiced: [Bool], probability: [Float]) {
        let signal = try NPY.read(Fixtures.path("pitch/signal_\(name).npy")).values
        let reference = try NPY.read(Fixtures.path("pitch/pyin_\(name).npy"))
        let F = reference.shape[1]
        let v = reference.values
        return (signal, Array(v[0..<F]), v[F..<(2 * F)].map { $0 > 0.5 }, Array(v[(2 * F)...]))
    }

    /// Voicing agrees on at least 97% of frames, and F0 is within 10 cents on at least 97% of
    /// the frames both call voiced (the bins are 10 cents apart, so this allows a bin).
    @Test(arguments: signals)
    func matchesLibrosa(_ name: String) throws {
        let reference = try Self.fixture(name)
        let track = try PitchTracker().track(reference.signal)
        #expect(track.frames == reference.f0.count)
        let F = min(track.frames, reference.f0.count)
        var sameVoicing = 0, bothVoiced = 0, close = 0
        var worstProbability: Float = 0
        for t in 0..<F {
            if track.voiced[t] == reference.voiced[t] { sameVoicing += 1 }
            if track.voiced[t] && reference.voiced[t] {
                bothVoiced += 1
                if abs(1200 * log2(Double(track.f0[t]) / Double(reference.f0[t]))) <= 10 { close += 1 }
            }
            #expect((track.f0[t] == 0) == !track.voiced[t])
            worstProbability = max(worstProbability, abs(track.voicedProbability[t] - reference.probability[t]))
        }
        let voicing = Double(sameVoicing) / Double(F)
        let within = bothVoiced == 0 ? 1 : Double(close) / Double(bothVoiced)
        print("pyin parity \(name): \(F) frames, voicing agrees \(String(format: "%.1f", 100 * voicing))%, "
            + "\(close)/\(bothVoiced) both-voiced within 10 cents, worst voiced-probability difference \(worstProbability)")
        #expect(voicing >= 0.97, "\(name): voicing agrees on \(voicing) of frames")
        #expect(within >= 0.97, "\(name): \(close) of \(bothVoiced) frames within 10 cents")
    }

    /// The banded Viterbi decodes a path as likely as librosa's dense recursion, with the same
    /// voicing and voiced bins. Paths may differ among exactly tied unvoiced states (which
    /// all read F0 0): log(p T) is taken as log p + log T, so rounding settles those ties.
    @Test(arguments: signals)
    func bandedDecodeEqualsDense(_ name: String) throws {
        let tracker = try PitchTracker()
        let observations = tracker.observations(try Self.fixture(name).signal)
        let banded = tracker.decode(observations), dense = tracker.decodeDense(observations)
        let a = tracker.logLikelihood(of: banded, observations), b = tracker.logLikelihood(of: dense, observations)
        #expect(abs(a - b) <= 1e-12 * abs(b), "\(name): log-likelihood \(a) vs dense \(b)")
        let S = tracker.settings.pitchBins
        #expect(banded.map { $0 < S ? $0 : -1 } == dense.map { $0 < S ? $0 : -1 })
    }

    /// The FFT difference function equals the direct sums.
    @Test func differenceFunctionEqualsDirectSums() throws {
        let tracker = try PitchTracker()
        let x = try Self.fixture("speech_librivox").signal
        let frame = (0..<1024).map { Double(x[8000 + $0]) }
        let direct = tracker.cumulativeMeanNormalizedDifferenceDirect(frame: frame)
        let fft = RealFFT<Double>(size: 2048)
        for i in 0..<2048 { fft.real[i] = i < 1024 ? frame[i] : 0 }
        let fast = tracker.cumulativeMeanNormalizedDifference(fft)
        #expect(fast.count == direct.count)
        var worst = 0.0
        for (a, b) in zip(fast, direct) { worst = max(worst, abs(a - b)) }
        #expect(worst < 1e-9, "worst difference \(worst)")
    }

    /// F0 frames sit on the mel's grid: 1 + floor(samples / hop), frame i centred on sample i hop.
    @Test func frameCountFollowsTheMelGrid() throws {
        let tracker = try PitchTracker()
        for n in [0, 1, 255, 256, 257, 1000, 4096] {
            let x = (0..<n).map { Float(sin(Double($0) * 0.1)) * 0.3 }
            #expect(tracker.track(x).frames == 1 + n / 256)
            #expect(tracker.settings.frameCount(samples: n) == 1 + n / 256)
        }
        let mel = MelSettings()
        #expect(mel.frameCount(samples: 12345) == tracker.settings.frameCount(samples: 12345))
    }

    /// A pure 200 Hz tone (bin 240 exactly) reads within one bin (10 cents) of 200 Hz on every
    /// frame away from the edges. Not closer: librosa 0.11's difference function counts the
    /// energy of the frame's last k samples in d(k), which pulls the refined period by up to
    /// half a bin, and librosa itself alternates between 200 and 201.16 Hz on this tone.
    @Test func pureToneIsFound() throws {
        let x = (0..<16000).map { Float(0.5 * sin(2 * Double.pi * 200 * Double($0) / 16000)) }
        let track = try PitchTracker().track(x)
        for t in 4..<(track.frames - 4) {
            #expect(track.voiced[t])
            #expect(abs(1200 * log2(Double(track.f0[t]) / 200)) < 10.01, "frame \(t): \(track.f0[t]) Hz")
        }
    }

    /// Silence is unvoiced with probability 0; results do not depend on the run.
    @Test func silenceIsUnvoicedAndRunsRepeat() throws {
        let tracker = try PitchTracker()
        let silent = tracker.track([Float](repeating: 0, count: 5000))
        #expect(silent.voiced.allSatisfy { !$0 } && silent.f0.allSatisfy { $0 == 0 } && silent.voicedProbability.allSatisfy { $0 == 0 })
        let x = try Self.fixture("speech_codec2").signal
        #expect(tracker.track(x) == tracker.track(x))
        #expect(tracker.track(x).stacked.count == 2 * tracker.track(x).frames)
    }

    /// The threshold prior: I_x(2, 18) = 1 - (1 - x)^19 - 19 x (1 - x)^18.
    @Test func betaCDFMatchesClosedForm() {
        for x in stride(from: 0.0, through: 1.0, by: 0.01) {
            let exact = 1 - pow(1 - x, 19) - 19 * x * pow(1 - x, 18)
            #expect(abs(PitchTracker.regularizedIncompleteBeta(x, 2, 18) - exact) < 1e-14)
        }
        #expect(abs(PitchTracker.regularizedIncompleteBeta(0.3, 2.5, 0.7) + PitchTracker.regularizedIncompleteBeta(0.7, 0.7, 2.5) - 1) < 1e-14)
    }

    @Test func rejectsUnusableSettings() {
        #expect(throws: ParawaveError.self) { _ = try PitchTracker(settings: PitchSettings(sampleRate: 16000, frameLength: 256)) }
        #expect(throws: ParawaveError.self) { _ = try PitchTracker(settings: PitchSettings(sampleRate: 16000, fMax: 9000)) }
        #expect(throws: ParawaveError.self) { _ = try PitchTracker(settings: PitchSettings(sampleRate: 16000, fMin: 300, fMax: 200)) }
        let s = PitchSettings()
        #expect(s.minPeriod == 29 && s.maxPeriod == 320 && s.pitchBins == 416 && s.transitionWidth == 71)
    }
}
