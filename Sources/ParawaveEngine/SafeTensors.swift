import CZlib
import Foundation
import ParawaveCore

/// The `safetensors` checkpoint format, read and written.
///
/// Layout: an 8-byte little-endian header length N; N bytes of JSON
/// `{"__metadata__": {string: string}, NAME: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`
/// padded with spaces so the data starts 8-byte aligned; then the tensors' bytes, offsets
/// relative to the data start. The writer produces exactly what Python's `safetensors`
/// writes for the same tensors (compact JSON, metadata first, tensors sorted by name, F32),
/// so its files load there unchanged, with one addition: the metadata key
/// `parawave.crc32`, the CRC-32 (zlib's) of the tensor bytes in 8 hex digits, so that bytes
/// damaged after writing are found on load rather than trained on. The reader checks it
/// when present (files from Python's `safetensors` carry none), takes F32, F64, F16 and BF16
/// (converted to Float32) and rejects malformed files with a clear error.
public struct SafeTensors: Equatable, Sendable {
    public struct Tensor: Equatable, Sendable {
        public var shape: [Int]
        /// Values in C order.
        public var values: [Float]
        /// The dtype as stored in the file it was read from ("F32" when written here).
        public var dtype: String

        public init(shape: [Int], values: [Float], dtype: String = "F32") {
            self.shape = shape
            self.values = values
            self.dtype = dtype
        }
    }

    public var tensors: [String: Tensor] = [:]
    public var metadata: [String: String] = [:]

    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Header lengths above this are rejected as corrupt (Python's limit is 100 MB).
    static let maximumHeaderLength = 100_000_000
    static let itemSizes = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2]

    /// A tensor checked for presence and shape, ready to copy into a parameter.
    public func tensor(_ name: String, shape: [Int], file: String = "checkpoint") throws -> [Float] {
        guard let tensor = tensors[name] else { throw ParawaveError(file, "missing tensor '\(name)'") }
        guard tensor.shape == shape else {
            throw ParawaveError(file, "tensor '\(name)' has shape \(tensor.shape) but the model needs \(shape)")
        }
        return tensor.values
    }

    // MARK: writing

    /// The metadata key of the tensor bytes' checksum.
    public static let checksumKey = "parawave.crc32"

    /// The CRC-32 of `bytes` in 8 lowercase hex digits.
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> String {
        var crc = CZlib.crc32(0, nil, 0)
        var start = 0
        while start < bytes.count {
            let chunk = min(bytes.count - start, Int(UInt32.max >> 1))
            crc = CZlib.crc32(crc, bytes.baseAddress!.advanced(by: start).assumingMemoryBound(to: Bytef.self), uInt(chunk))
            start += chunk
        }
        return String(format: "%08x", UInt32(truncatingIfNeeded: crc))
    }

    /// The file's bytes, with the tensor bytes' checksum in the metadata unless `checksum`
    /// is false (then byte for byte what Python's `safetensors` writes).
    public func encode(checksum: Bool = true) -> Data {
        let names = tensors.keys.sorted()
        var tensorBytes = Data(capacity: 4 * tensors.values.map(\.values.count).reduce(0, +))
        for name in names {
            tensors[name]!.values.withUnsafeBufferPointer { buffer in
                for v in buffer { withUnsafeBytes(of: v.bitPattern.littleEndian) { tensorBytes.append(contentsOf: $0) } }
            }
        }
        var metadata = metadata
        if checksum { metadata[Self.checksumKey] = tensorBytes.withUnsafeBytes { Self.crc32($0) } }
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let entries = metadata.keys.sorted().map { "\(Self.jsonString($0)):\(Self.jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{" + entries.joined(separator: ",") + "}")
        }
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let size = tensor.values.count * 4
            parts.append("\(Self.jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        out.append(tensorBytes)
        return out
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        for (name, tensor) in tensors where tensor.values.count != tensor.shape.reduce(1, *) {
            throw ParawaveError(path, "tensor '\(name)' has \(tensor.values.count) values for shape \(tensor.shape)")
        }
        try AtomicFile.write(encode(), to: path)
    }

    /// JSON string literal as serde_json writes it: `"` and `\` escaped, control characters
    /// as \n \r \t \b \f or \u00XX, everything else (non-ASCII included) as is.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    // MARK: reading

    /// Reads `path`.
    public static func read(_ path: String) throws -> SafeTensors {
        return try decode(try InputFile.contents(of: path, what: "checkpoint"), name: path)
    }

    /// Parses a file's bytes; `name` labels errors.
    public static func decode(_ data: Data, name: String = "checkpoint") throws -> SafeTensors {
        func fail(_ message: String) -> ParawaveError { ParawaveError(name, "not a valid safetensors file: \(message)") }
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw fail(bytes.isEmpty ? "the file is empty" : "it is truncated before the header length") }
        let length = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(maximumHeaderLength) else { throw fail("header length \(length) is absurd") }
        guard 8 + Int(length) <= bytes.count else {
            throw fail("header length \(length) runs past the end of the \(bytes.count)-byte file (truncated?)")
        }
        let headerBytes = bytes[8..<(8 + Int(length))]
        guard let object = try? JSONSerialization.jsonObject(with: Data(headerBytes)), let header = object as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        let dataStart = 8 + Int(length)
        let available = bytes.count - dataStart
        var result = SafeTensors()
        var ranges: [(Int, Int, String)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail("__metadata__ is not a map") }
                for (k, v) in map {
                    guard let text = v as? String else { throw fail("metadata value '\(k)' is not a string") }
                    result.metadata[k] = text
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [Any], let offsetValues = entry["data_offsets"] as? [Any], offsetValues.count == 2 else {
                throw fail("tensor '\(key)' lacks dtype, shape or data_offsets")
            }
            let shape = try shapeValues.map { v -> Int in
                guard let n = v as? Int, n >= 0 else { throw fail("tensor '\(key)' has an invalid shape") }
                return n
            }
            let offsets = try offsetValues.map { v -> Int in
                guard let n = v as? Int, n >= 0 else { throw fail("tensor '\(key)' has invalid data_offsets") }
                return n
            }
            guard let itemSize = itemSizes[dtype] else {
                throw fail("tensor '\(key)' has dtype \(dtype); F32, F64, F16 and BF16 are supported")
            }
            var count = 1
            for d in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, p < Int(Int32.max) else { throw fail("tensor '\(key)' has an absurd shape \(shape)") }
                count = p
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= available else {
                throw fail("tensor '\(key)' has data_offsets [\(begin), \(end)] outside the \(available)-byte data (truncated?)")
            }
            guard end - begin == count * itemSize else {
                throw fail("tensor '\(key)' has \(end - begin) bytes but shape \(shape) of \(dtype) needs \(count * itemSize)")
            }
            ranges.append((begin, end, key))
            result.tensors[key] = Tensor(shape: shape, values: convert(bytes, from: dataStart + begin, count: count, dtype: dtype), dtype: dtype)
        }
        ranges.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        for (previous, next) in zip(ranges, ranges.dropFirst()) where next.0 < previous.1 {
            throw fail("tensors '\(previous.2)' and '\(next.2)' overlap")
        }
        if let stored = result.metadata.removeValue(forKey: checksumKey) {
            let end = dataStart + (ranges.map(\.1).max() ?? 0)
            let actual = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[dataStart..<end])) }
            guard actual == stored.lowercased() else {
                throw ParawaveError(name, "its tensor bytes fail their checksum (CRC-32 \(actual), recorded \(stored)): the file was "
                                    + "damaged after it was written; use an earlier copy or retrain")
            }
        }
        return result
    }

    static func convert(_ bytes: [UInt8], from start: Int, count: Int, dtype: String) -> [Float] {
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + start
            switch dtype {
            case "F32":
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case "F64":
                for i in 0..<count { values[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case "F16":
                for i in 0..<count { values[i] = halfToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            default:  // BF16: the top 16 bits of a Float32.
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            }
        }
        return values
    }

    /// IEEE half precision to Float32, subnormals, infinities and NaN included.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F), mantissa = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * 0x1.0p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}
