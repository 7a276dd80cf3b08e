import Foundation

/// Writes small WAV files for tests without any audio library: a canonical RIFF/WAVE
/// header and 16-bit little-endian samples.
public enum TestWAV {
    /// A 16-bit PCM WAV of `channels` interleaved channels.
    public static func data(samples: [Float], sampleRate: Int, channels: Int = 1) -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let bytes = samples.count * 2
        out.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + bytes)); out.append(contentsOf: Array("WAVE".utf8))
        out.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(UInt16(channels)); u32(UInt32(sampleRate))
        u32(UInt32(sampleRate * channels * 2)); u16(UInt16(channels * 2)); u16(16)
        out.append(contentsOf: Array("data".utf8)); u32(UInt32(bytes))
        for s in samples { u16(UInt16(bitPattern: Int16(max(-32768, min(32767, (s * 32767).rounded()))))) }
        return out
    }

    /// A voiced-sounding test signal: a gliding harmonic tone with an envelope, `seconds` long.
    public static func speechLike(seconds: Double, sampleRate: Int, pitch: Double = 150) -> [Float] {
        let count = Int(seconds * Double(sampleRate))
        var phase = 0.0
        return (0..<count).map { i in
            let t = Double(i) / Double(sampleRate)
            phase += 2 * Double.pi * (pitch + 30 * sin(2 * Double.pi * 2 * t)) / Double(sampleRate)
            var v = 0.0
            for h in 1...8 { v += sin(Double(h) * phase) / Double(h) }
            return Float(0.3 * v * (0.6 + 0.4 * sin(2 * Double.pi * 3 * t)))
        }
    }

    public static func write(_ samples: [Float], sampleRate: Int, channels: Int = 1, to path: String) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: data(samples: samples, sampleRate: sampleRate, channels: channels))
    }
}
