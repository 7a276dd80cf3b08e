import CSndfile
import Foundation
import ParawaveCore

/// Reads and writes audio files through libsndfile.
///
/// Reading accepts anything libsndfile opens (WAV, FLAC, OGG/Vorbis, AIFF, ... at any bit
/// depth and channel count) and returns mono Float32: channels are averaged, integer
/// samples are scaled by 1/2^(bits-1) (so 16-bit k reads as k/32768). Writing produces
/// WAV; integer encodings scale by 2^(bits-1) and round, so a 16-bit file read and written
/// again is bit-exact. Writes are atomic.
public enum AudioFile {
    /// Header facts about a file, without reading its samples.
    public struct Info: Sendable {
        public var frames: Int
        public var sampleRate: Int
        public var channels: Int
        /// libsndfile's major format name, for example "WAV (Microsoft)".
        public var format: String
        public var duration: Double { sampleRate > 0 ? Double(frames) / Double(sampleRate) : 0 }
    }

    /// File-name endings that libsndfile reads and that `prepare` looks for.
    public static let extensions: Set<String> = [
        "wav", "wave", "flac", "ogg", "oga", "opus", "aif", "aiff", "aifc", "au", "snd",
        "caf", "w64", "rf64", "mp3", "voc", "sd2", "wv",
    ]

    /// Reads `path`'s header.
    public static func info(_ path: String) throws -> Info {
        let file = try OpenFile(path)
        defer { file.close() }
        return file.info
    }

    /// Reads `path` as mono Float32 at its own rate.
    public static func read(_ path: String) throws -> Audio {
        let file = try OpenFile(path)
        defer { file.close() }
        return try file.readMono()
    }

    /// Reads `path` as mono Float32 converted to `sampleRate` with libsoxr (high quality).
    /// A float file holding NaN or an infinity is refused, naming the first such sample.
    public static func read(_ path: String, sampleRate: Int) throws -> Audio {
        let audio = try read(path)
        if let bad = audio.samples.firstIndex(where: { !$0.isFinite }) {
            let seconds = String(format: "%.3f", Double(bad) / Double(max(audio.sampleRate, 1)))
            throw ParawaveError(path, "holds a non-finite sample (\(audio.samples[bad])) at index \(bad) (\(seconds) s); the file is damaged")
        }
        return try Resampler.resample(audio, to: sampleRate)
    }

    /// Writes `audio` to `path` as a WAV file, atomically.
    public static func write(_ audio: Audio, to path: String, encoding: SampleEncoding = .pcm16) throws {
        guard audio.sampleRate > 0 else { throw ParawaveError(path, "cannot write audio with sample rate \(audio.sampleRate)") }
        if let bad = audio.samples.firstIndex(where: { !$0.isFinite }) {
            throw ParawaveError(path, "refusing to write audio with a non-finite sample at index \(bad)")
        }
        try AtomicFile.write(to: path) { temporary in
            var info = SF_INFO()
            info.samplerate = Int32(audio.sampleRate)
            info.channels = 1
            let subtype: Int32
            switch encoding {
            case .pcm16: subtype = Int32(SF_FORMAT_PCM_16)
            case .pcm24: subtype = Int32(SF_FORMAT_PCM_24)
            case .float32: subtype = Int32(SF_FORMAT_FLOAT)
            }
            info.format = Int32(SF_FORMAT_WAV) | subtype
            let (opened, failure) = AudioFile.open(temporary, mode: Int32(SFM_WRITE), &info)
            guard let handle = opened else { throw ParawaveError(path, "cannot write WAV: \(failure)") }
            defer { sf_close(handle) }
            let count = audio.samples.count
            let written: sf_count_t
            switch encoding {
            case .pcm16:
                let shorts = audio.samples.map { Int16(quantize($0, scale: 32768, low: -32768, high: 32767)) }
                written = shorts.withUnsafeBufferPointer { sf_writef_short(handle, $0.baseAddress, sf_count_t(count)) }
            case .pcm24:
                // libsndfile keeps the top 24 bits of an Int32.
                let ints = audio.samples.map { quantize($0, scale: 8_388_608, low: -8_388_608, high: 8_388_607) << 8 }
                written = ints.withUnsafeBufferPointer { sf_writef_int(handle, $0.baseAddress, sf_count_t(count)) }
            case .float32:
                written = audio.samples.withUnsafeBufferPointer { sf_writef_float(handle, $0.baseAddress, sf_count_t(count)) }
            }
            if written != sf_count_t(count) {
                throw ParawaveError(path, "short write: \(String(cString: sf_strerror(handle)))")
            }
        }
    }

    /// Rounds `value * scale` to the nearest integer and clips it to [low, high].
    @inline(__always)
    static func quantize(_ value: Float, scale: Float, low: Int32, high: Int32) -> Int32 {
        let scaled = (value * scale).rounded(.toNearestOrEven)
        if scaled <= Float(low) { return low }
        if scaled >= Float(high) { return high }
        return Int32(scaled)
    }
}

/// An open libsndfile handle for reading: the only place its pointer lives.
private final class OpenFile {
    let handle: OpaquePointer
    let info: AudioFile.Info
    let path: String
    private var sfinfo: SF_INFO

    init(_ path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such file")
        }
        if isDirectory.boolValue { throw ParawaveError(path, "is a folder, not an audio file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        if size == 0 { throw ParawaveError(path, "the file is empty") }
        var sfinfo = SF_INFO()
        let (opened, failure) = AudioFile.open(path, mode: Int32(SFM_READ), &sfinfo)
        guard let handle = opened else { throw ParawaveError(path, "cannot read audio: \(failure) (libsndfile)") }
        self.handle = handle
        self.sfinfo = sfinfo
        var format = SF_FORMAT_INFO()
        format.format = sfinfo.format & Int32(SF_FORMAT_TYPEMASK)
        let name = sf_command(handle, Int32(SFC_GET_FORMAT_INFO), &format, Int32(MemoryLayout<SF_FORMAT_INFO>.size)) == 0 && format.name != nil
            ? String(cString: format.name) : "unknown"
        info = AudioFile.Info(frames: Int(sfinfo.frames), sampleRate: Int(sfinfo.samplerate), channels: Int(sfinfo.channels), format: name)
        if let problem = truncation() {
            sf_close(handle)
            throw ParawaveError(path, problem)
        }
        if info.sampleRate <= 0 || info.channels <= 0 || info.channels > 1024 {
            sf_close(handle)
            throw ParawaveError(path, "invalid header: \(info.channels) channels at \(info.sampleRate) Hz")
        }
    }

    func close() { sf_close(handle) }

    /// libsndfile logs `data : N (should be M)` when a WAV or AIFF data chunk claims more
    /// bytes than the file holds; it then reads the shorter length silently. A file cut
    /// short is a damaged file, so it is reported instead.
    private func truncation() -> String? {
        var buffer = [CChar](repeating: 0, count: 16384)
        _ = sf_command(handle, Int32(SFC_GET_LOG_INFO), &buffer, Int32(buffer.count))
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let log = String(decoding: bytes, as: UTF8.self)
        for line in log.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("data") || trimmed.hasPrefix("SSND"), let open = trimmed.range(of: "(should be ") else { continue }
            let declaredText = trimmed[trimmed.index(after: trimmed.firstIndex(of: ":") ?? trimmed.startIndex)..<open.lowerBound]
                .trimmingCharacters(in: .whitespaces)
            let actualText = trimmed[open.upperBound...].prefix { $0.isNumber }
            guard let declared = UInt64(declaredText), let actual = UInt64(actualText) else { continue }
            // 0 and 0xFFFFFFFF mark a stream written without knowing its length: not damage.
            if declared != 0 && declared != 0xFFFF_FFFF && actual < declared {
                return "the file is truncated: its header declares \(declared) bytes of audio but only \(actual) are present"
            }
        }
        return nil
    }

    /// Reads every frame and averages channels into one. The frames come in blocks, so the
    /// memory follows the audio actually decoded, not the length a header claims.
    func readMono() throws -> Audio {
        let channels = info.channels
        // libsndfile's SF_COUNT_MAX: a stream of unknown length, read to its end.
        let unknownLength = info.frames == Int(Int64.max)
        let frames = unknownLength ? Int.max : info.frames
        if frames <= 0 { throw ParawaveError(path, "the file contains no audio samples") }
        let (total, overflow) = frames.multipliedReportingOverflow(by: channels)
        if !unknownLength && (overflow || total > 1 << 34) {
            throw ParawaveError(path, "invalid header: it declares \(frames) frames of \(channels) channels")
        }
        let block = 1 << 16
        var interleaved: [Float] = []
        interleaved.reserveCapacity(unknownLength ? block * channels : min(total, block * channels * 16))
        var scratch = [Float](repeating: 0, count: block * channels)
        var got = 0
        while got < frames {
            let want = min(block, frames - got)
            let read = Int(scratch.withUnsafeMutableBufferPointer { sf_readf_float(handle, $0.baseAddress, sf_count_t(want)) })
            if sf_error(handle) != 0 {
                throw ParawaveError(path, "cannot read audio: \(String(cString: sf_strerror(handle))) (libsndfile)")
            }
            guard read > 0 else { break }
            interleaved.append(contentsOf: scratch.prefix(read * channels))
            got += read
        }
        if got == 0 { throw ParawaveError(path, "the file contains no audio samples") }
        if !unknownLength && got < frames {
            throw ParawaveError(path, "the file is truncated: its header declares \(frames) frames but only \(got) could be read")
        }
        if channels == 1 { return Audio(samples: interleaved, sampleRate: info.sampleRate) }
        var mono = [Float](repeating: 0, count: got)
        let scale = 1 / Float(channels)
        interleaved.withUnsafeBufferPointer { src in
            for t in 0..<got {
                var sum: Float = 0
                for c in 0..<channels { sum += src[t * channels + c] }
                mono[t] = sum * scale
            }
        }
        return Audio(samples: mono, sampleRate: info.sampleRate)
    }
}

extension AudioFile {
    /// libsndfile reports a failed `sf_open` through one process-wide error slot that the
    /// next open, on any thread, overwrites; opens are serialised so each failure keeps
    /// its own reason.
    private static let openLock = NSLock()

    static func open(_ path: String, mode: Int32, _ info: inout SF_INFO) -> (OpaquePointer?, String) {
        openLock.lock()
        defer { openLock.unlock() }
        let handle = sf_open(path, mode, &info)
        let reason = handle == nil ? String(cString: sf_strerror(nil)).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return (handle, reason)
    }
}
