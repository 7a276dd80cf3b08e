import Foundation
import ParawaveAudio
import ParawaveTestSupport
import Testing

/// Audio I/O through libsndfile and resampling through libsoxr.
struct AudioFileTests {
    func ints() throws -> [Float] { try NPY.read(Fixtures.path("audio/mono_pcm16_ints.npy")).values }

    @Test func sixteenBitWavRoundTripIsBitExact() throws {
        let source = Fixtures.path("audio/mono_pcm16.wav")
        let audio = try AudioFile.read(source)
        #expect(audio.sampleRate == 16000)
        #expect(audio.samples == (try ints()).map { $0 / 32768 })
        let path = Fixtures.temporaryDirectory() + "/copy.wav"
        try AudioFile.write(audio, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: source)))
    }

    @Test(arguments: ["mono_pcm24.wav", "mono_pcm32.wav", "mono_float.wav", "mono.flac", "mono.aiff"])
    func readsEveryDepthAndContainer(_ name: String) throws {
        let audio = try AudioFile.read(Fixtures.path("audio/\(name)"))
        #expect(audio.sampleRate == 16000)
        #expect(audio.samples == (try ints()).map { $0 / 32768 }, "\(name)")
    }

    @Test func readsEightBitAndAveragesStereo() throws {
        let u8 = try AudioFile.read(Fixtures.path("audio/mono_u8.wav"))
        #expect(u8.samples == (try NPY.read(Fixtures.path("audio/mono_u8_expected.npy"))).values)
        let stereo = try AudioFile.read(Fixtures.path("audio/stereo_pcm16.wav"))
        let expected = try NPY.read(Fixtures.path("audio/stereo_expected_mono.npy")).values
        #expect(zip(stereo.samples, expected).allSatisfy { abs($0 - $1) <= 1e-7 })
        #expect(try AudioFile.info(Fixtures.path("audio/stereo_pcm16.wav")).channels == 2)
    }

    @Test func readsOggVorbis() throws {
        let audio = try AudioFile.read(Fixtures.path("audio/tone440.ogg"))
        #expect(audio.sampleRate == 16000)
        #expect(abs(audio.samples.count - 1600) <= 2)
        #expect(Self.peakFrequency(audio) == 440)
    }

    @Test(arguments: SampleEncoding.allCases)
    func writesEveryEncoding(_ encoding: SampleEncoding) throws {
        let samples: [Float] = (0..<1000).map { Float(sin(Double($0) * 0.05)) * 0.9 }
        let path = Fixtures.temporaryDirectory() + "/e.wav"
        try AudioFile.write(Audio(samples: samples, sampleRate: 22050), to: path, encoding: encoding)
        let back = try AudioFile.read(path)
        #expect(back.sampleRate == 22050)
        let tolerance: Float = encoding == .pcm16 ? 1 / 32768 : encoding == .pcm24 ? 1 / 8_388_608 : 0
        #expect(zip(back.samples, samples).allSatisfy { abs($0 - $1) <= tolerance })
    }

    @Test func clipsOutOfRangeSamplesWhenWritingIntegers() throws {
        let path = Fixtures.temporaryDirectory() + "/clip.wav"
        try AudioFile.write(Audio(samples: [2, -2, 1, -1], sampleRate: 8000), to: path)
        #expect(try AudioFile.read(path).samples == [32767.0 / 32768, -1, 32767.0 / 32768, -1])
    }

    @Test func resamples44kToneTo16kWithoutAliasing() throws {
        let rate = 44100
        let tone = (0..<(rate * 2)).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / Double(rate))) }
        // A second tone above the new Nyquist (8 kHz) must be filtered out, not folded down.
        let high = (0..<(rate * 2)).map { Float(0.3 * sin(2 * Double.pi * 11000 * Double($0) / Double(rate))) }
        let audio = try Resampler.resample(Audio(samples: zip(tone, high).map(+), sampleRate: rate), to: 16000)
        #expect(audio.sampleRate == 16000)
        #expect(audio.samples.count == 32000)
        let spectrum = Self.spectrumDB(audio)
        let peak = spectrum.enumerated().max { $0.element < $1.element }!
        #expect(abs(Double(peak.offset) * 16000 / Double(Self.size) - 1000) < 16000 / Double(Self.size))
        // Everything away from the 1 kHz peak is at least 60 dB down.
        let worst = spectrum.enumerated().filter { abs(Double($0.offset) * 16000 / Double(Self.size) - 1000) > 60 }.map(\.element).max()!
        #expect(worst - peak.element < -60, "aliasing or leakage at \(worst - peak.element) dB")
    }

    @Test func sameRateIsUnchanged() throws {
        let audio = Audio(samples: [0.1, 0.2, 0.3], sampleRate: 16000)
        #expect(try Resampler.resample(audio, to: 16000) == audio)
    }

    @Test func badFilesGiveOneLineErrorsNamingTheFile() throws {
        let dir = Fixtures.temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/empty.wav", contents: Data())
        FileManager.default.createFile(atPath: dir + "/text.wav", contents: Data("this is not audio\n".utf8))
        let good = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("audio/mono_pcm16.wav")))
        FileManager.default.createFile(atPath: dir + "/truncated.wav", contents: good.prefix(good.count / 2))
        let cases = [("empty.wav", "empty"), ("text.wav", "not recognised"), ("truncated.wav", "truncated"), ("missing.wav", "no such file")]
        for (name, expected) in cases {
            do {
                _ = try AudioFile.read(dir + "/" + name)
                Issue.record("\(name) was accepted")
            } catch {
                let text = "\(error)"
                #expect(text.contains(dir + "/" + name) && text.lowercased().contains(expected), "\(text)")
                #expect(!text.contains("\n"))
            }
        }
    }

    static let size = 16384

    /// Hann-windowed magnitude spectrum in dB of the first `size` samples (zero-padded).
    static func spectrumDB(_ audio: Audio) -> [Double] {
        let stft = STFT(nFFT: size, hopLength: size, center: false)
        var x = Array(audio.samples.prefix(size))
        x += [Float](repeating: 0, count: size - x.count)
        let magnitude = stft.magnitude(x)
        return magnitude.prefix(size / 2 + 1).map { 20 * log10(max(Double($0), 1e-12)) }
    }

    static func peakFrequency(_ audio: Audio) -> Int {
        let spectrum = spectrumDB(audio)
        let peak = spectrum.enumerated().max { $0.element < $1.element }!.offset
        return Int((Double(peak) * Double(audio.sampleRate) / Double(size) / 10).rounded()) * 10
    }
}
