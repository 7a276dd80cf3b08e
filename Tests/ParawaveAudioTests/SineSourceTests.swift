import Foundation
import Testing

import ParawaveAudio

struct SineSourceTests {
    /// A steady 200 Hz track with one harmonic is sqrt(2) sin(phi_0 + 2 pi 200 (t + 1) / sr)
    /// away from the track's ends: the phase accumulates F0 / sr per sample from the initial phase.
    @Test func steadyTrackIsASine() {
        let source = SineSource(harmonics: 1, amplitude: .equal, ramp: 64)
        let f0 = [Float](repeating: 200, count: 40)
        let s = source.signal(f0: f0, hop: 256, sampleRate: 16000, samples: 39 * 256, initialPhase: 0.3)
        var worst = 0.0
        for t in 0..<s.count {
            let expected = 2.0.squareRoot() * sin(0.3 + 2 * Double.pi * 200 * Double(t + 1) / 16000)
            worst = max(worst, abs(Double(s[t]) - expected))
        }
        #expect(worst < 2e-4, "largest difference \(worst)")
    }

    /// With every harmonic below Nyquist the voiced source has unit RMS, for either weighting.
    @Test func unitRMSWhenVoiced() {
        for amplitude in SineSource.Amplitude.allCases {
            let s = SineSource(harmonics: 8, amplitude: amplitude).signal(f0: [Float](repeating: 110, count: 64), hop: 256, sampleRate: 16000,
                                                                          samples: 63 * 256)
            let rms = (s.map { Double($0 * $0) }.reduce(0, +) / Double(s.count)).squareRoot()
            #expect(abs(rms - 1) < 0.01, "\(amplitude): RMS \(rms)")
        }
    }

    /// Harmonics at or above Nyquist are left out: at 3 kHz and 16 kHz only h = 1 and 2 sound.
    @Test func harmonicsStopBelowNyquist() {
        let source = SineSource(harmonics: 8, amplitude: .equal, ramp: 0)
        let s = source.signal(f0: [Float](repeating: 3000, count: 8), hop: 256, sampleRate: 16000, samples: 7 * 256)
        let norm = 1 / (8.0 / 2).squareRoot()
        var worst = 0.0
        for t in 0..<s.count {
            let phi = 2 * Double.pi * 3000 * Double(t + 1) / 16000
            worst = max(worst, abs(Double(s[t]) - norm * (sin(phi) + sin(2 * phi))))
        }
        #expect(worst < 2e-4, "largest difference \(worst)")
    }

    /// Unvoiced frames are silent but for the ramps, which are linear, `ramp` samples long and
    /// centred on the boundary (halfway between the last voiced frame's centre and the first
    /// unvoiced one's); a track with no voiced frame gives silence.
    @Test func silentWhenUnvoicedWithCentredRamps() {
        let hop = 256, ramp = 64, sr = 16000
        let f0: [Float] = Array(repeating: 150, count: 10) + Array(repeating: 0, count: 10) + Array(repeating: .nan, count: 5)
        let s = SineSource(harmonics: 1, amplitude: .equal, ramp: ramp).signal(f0: f0, hop: hop, sampleRate: sr, samples: 24 * hop)
        let boundary = 9 * hop + hop / 2  // the first sample nearer frame 10 than frame 9
        var worst = 0.0
        for t in 0..<s.count {
            // The box of `ramp` samples starting at t - ramp/2 covers this share of voiced samples.
            let envelope = max(0, min(1, Double(boundary - (t - ramp / 2)) / Double(ramp)))
            let expected = envelope * 2.0.squareRoot() * sin(2 * Double.pi * 150 * Double(t + 1) / Double(sr))
            worst = max(worst, abs(Double(s[t]) - expected))
        }
        #expect(worst < 2e-4, "largest difference \(worst)")
        #expect(s[(boundary + ramp / 2)...].allSatisfy { $0 == 0 })
        #expect(SineSource().signal(f0: [0, 0, 0], hop: hop, sampleRate: sr, samples: 2 * hop).allSatisfy { $0 == 0 })
        #expect(SineSource().signal(f0: [], hop: hop, sampleRate: sr, samples: 100).allSatisfy { $0 == 0 })
    }

    /// A glide from 100 to 200 Hz over one second is interpolated in log F0: the phase advances
    /// by the integral of 100 * 2^u over u in [0, 1], 100 / ln 2 cycles, give or take the held ends.
    @Test func glideIsInterpolatedInLogF0() {
        let hop = 160, sr = 16000
        let frames = 101  // frame i at i * 10 ms
        let f0 = (0..<frames).map { Float(100 * pow(2, Double($0) / Double(frames - 1))) }
        let s = SineSource(harmonics: 1, amplitude: .equal, ramp: 0).signal(f0: f0, hop: hop, sampleRate: sr, samples: (frames - 1) * hop)
        // Count upward zero crossings: one per cycle.
        var crossings = 0
        for t in 1..<s.count where s[t - 1] < 0 && s[t] >= 0 { crossings += 1 }
        #expect(abs(Double(crossings) - 100 / log(2.0)) < 1.5, "\(crossings) cycles")
    }
}

struct PitchMetricsTests {
    /// Cents over frames voiced in both, the share within 50 cents, and the voicing error over
    /// all frames, against values worked by hand; pooling utterances weights every frame.
    @Test func metricsByHand() throws {
        // Frames: both voiced at +100 cents, both at -25, both equal, ref only, gen only, neither.
        let reference: [Float] = [200, 200, 150, 120, 0, 0]
        let generated: [Float] = [200 * pow(2, 100.0 / 1200).float, 200 * pow(2, -25.0 / 1200).float, 150, 0, 180, 0]
        let m = PitchMetrics.compare(reference: reference, generated: generated)
        #expect(m.bothVoiced == 3 && m.frames == 6)
        let rmse = try #require(m.rmseCents), within = try #require(m.within50)
        #expect(abs(rmse - ((100.0 * 100 + 25 * 25 + 0) / 3).squareRoot()) < 0.01, "\(rmse)")
        #expect(abs(within - 2.0 / 3) < 1e-12 && abs(m.voicingError - 2.0 / 6) < 1e-12)
        // No frame voiced in both: no pitch figures, only the voicing error.
        let none = PitchMetrics.compare(reference: [0, 100], generated: [100, 0])
        #expect(none.rmseCents == nil && none.within50 == nil && none.voicingError == 1)
        // Pooling: two utterances weigh by their frames.
        var pool = PitchMetrics.Accumulator()
        pool.add(reference: reference, generated: generated)
        pool.add(reference: [100, 100], generated: [100, 100])
        #expect(pool.metrics.bothVoiced == 5 && abs(pool.metrics.within50! - 4.0 / 5) < 1e-12 && abs(pool.metrics.voicingError - 2.0 / 8) < 1e-12)
    }
}

private extension Double {
    var float: Float { Float(self) }
}

extension SineSourceTests {
    /// Aligned to a recording, the one-harmonic source is sqrt(2) cos of the recording's
    /// fundamental phase (in its interior): sin(phi + delta + pi/2) with delta the angle of the
    /// demodulated fundamental, whatever its initial phase and harmonics.
    @Test(arguments: [0.0, 1.3, 4.0])
    func alignedToTheFundamental(offset: Double) {
        let sr = 16000, hop = 256, f = 180.0, frames = 30
        let psi = (0..<(frames * hop)).map { 2 * Double.pi * f * Double($0) / Double(sr) + offset }
        let audio = psi.map { Float(0.5 * cos($0) + 0.3 * cos(2 * $0 + 1) + 0.1 * cos(3 * $0 + 2)) }
        let source = SineSource(harmonics: 1, amplitude: .equal, ramp: 0, trainingPhase: .aligned)
        let s = source.trainingSignal(f0: [Float](repeating: Float(f), count: frames), hop: hop, sampleRate: sr, audio: audio, initialPhase: 9)
        var worst = 0.0
        for t in 400..<(audio.count - 400) { worst = max(worst, abs(Double(s[t]) - 2.0.squareRoot() * cos(psi[t]))) }
        #expect(worst < 0.05, "offset \(offset): largest difference \(worst)")
        // The random kind ignores the audio and starts from the given phase.
        var random = source
        random.trainingPhase = .random
        #expect(random.trainingSignal(f0: [Float](repeating: Float(f), count: frames), hop: hop, sampleRate: sr, audio: audio, initialPhase: 0.25)
                == random.signal(f0: [Float](repeating: Float(f), count: frames), hop: hop, sampleRate: sr, samples: audio.count, initialPhase: 0.25))
        // Configs written without a training phase read as random.
        let json = #"{"harmonics":8,"amplitude":"inverse","ramp":64}"#
        #expect(try! JSONDecoder().decode(SineSource.self, from: Data(json.utf8)).trainingPhase == .random)
    }
}
