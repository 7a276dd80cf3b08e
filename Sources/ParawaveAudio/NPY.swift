import Foundation
import ParawaveCore

/// An array read from a NumPy `.npy` file, its values converted to Float32 in C order.
public struct NPYArray: Equatable, Sendable {
    public var shape: [Int]
    /// Values in C (row-major) order, whatever the file's order.
    public var values: [Float]
    /// The file's element type, as numpy spells it (`<f4`, `<f8`, `<i2`).
    public var dtype: String

    public init(shape: [Int], values: [Float], dtype: String = "<f4") {
        self.shape = shape
        self.values = values
        self.dtype = dtype
    }
}

/// Reads and writes NumPy's `.npy` format (versions 1.0, 2.0 and 3.0).
///
/// Layout: the magic `\x93NUMPY`, a version (major, minor), the header length (uint16 LE in
/// 1.0, uint32 LE in 2.0/3.0), a Python dict literal with `descr`, `fortran_order` and
/// `shape`, padded with spaces to a multiple of 64 bytes and ended by a newline; then the
/// raw data. Little-endian float32, float64 and int16 are supported, in C or Fortran order.
public enum NPY {
    /// Element types this reader and writer handle.
    public enum DType: String, CaseIterable, Sendable {
        case float32 = "<f4"
        case float64 = "<f8"
        case int16 = "<i2"

        var size: Int {
            switch self {
            case .float32: 4
            case .float64: 8
            case .int16: 2
            }
        }
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// Headers longer than this are rejected as corrupt (numpy itself refuses over 10,000).
    static let maximumHeaderLength = 1 << 20

    /// Reads `path`.
    public static func read(_ path: String) throws -> NPYArray {
        return try decode(try InputFile.contents(of: path, what: ".npy"), name: path)
    }

    /// Parses the bytes of a `.npy` file; `name` labels errors.
    public static func decode(_ data: Data, name: String = "npy") throws -> NPYArray {
        let bytes = [UInt8](data)
        func fail(_ message: String) -> ParawaveError { ParawaveError(name, "not a valid .npy file: \(message)") }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail(bytes.isEmpty ? "the file is empty" : "it does not start with the NumPy magic string")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("the header is cut short") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("format version \(major).\(bytes[7]) is not supported (1.0, 2.0 and 3.0 are)")
        }
        if headerLength > maximumHeaderLength {
            throw fail("header length \(headerLength) is absurd (over \(maximumHeaderLength) bytes)")
        }
        guard headerStart + headerLength <= bytes.count else {
            throw fail("header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
        }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail("the header is not text")
        }
        let descr = try stringValue(of: "descr", in: header, fail: fail)
        let fortran = try boolValue(of: "fortran_order", in: header, fail: fail)
        let shape = try shapeValue(in: header, fail: fail)
        guard let dtype = DType(rawValue: descr) else {
            if descr.hasPrefix(">") { throw fail("big-endian data (\(descr)) is not supported; convert with arr.astype('<f4')") }
            if descr.contains("O") { throw fail("object arrays are not supported") }
            throw fail("element type \(descr) is not supported (float32, float64 and int16, little-endian, are)")
        }
        var count = 1
        for d in shape {
            guard d >= 0 else { throw fail("negative dimension in shape \(shape)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= Int(Int32.max) else { throw fail("shape \(shape) is too large") }
            count = product
        }
        let dataStart = headerStart + headerLength
        let needed = count * dtype.size
        guard bytes.count - dataStart >= needed else {
            throw fail("the data is truncated: shape \(shape) of \(descr) needs \(needed) bytes but \(bytes.count - dataStart) are present")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart
            switch dtype {
            case .float32:
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .float64:
                for i in 0..<count { values[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .int16:
                for i in 0..<count { values[i] = Float(Int16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            }
        }
        if fortran && shape.count > 1 { values = fortranToC(values, shape: shape) }
        return NPYArray(shape: shape, values: values, dtype: descr)
    }

    /// Writes `values` (C order) with `shape` to `path` atomically.
    public static func write(_ values: [Float], shape: [Int], to path: String, dtype: DType = .float32) throws {
        try AtomicFile.write(encode(values, shape: shape, dtype: dtype), to: path)
    }

    /// Writes a matrix as a 2-D array of shape (rows, columns).
    public static func write(_ matrix: Matrix, to path: String, dtype: DType = .float32) throws {
        try write(matrix.values, shape: [matrix.rows, matrix.columns], to: path, dtype: dtype)
    }

    /// The bytes of a `.npy` file holding `values` (C order) with `shape`.
    public static func encode(_ values: [Float], shape: [Int], dtype: DType = .float32) -> Data {
        precondition(values.count == shape.reduce(1, *), "values do not match the shape")
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Version 1.0 unless the header needs more than a uint16 length.
        let version: UInt8 = header.utf8.count + 64 > 65535 ? 2 : 1
        let prefix = version == 1 ? 10 : 12
        let total = ((prefix + header.utf8.count + 1 + 63) / 64) * 64
        header += String(repeating: " ", count: total - prefix - header.utf8.count - 1) + "\n"
        var out = Data(magic)
        out.append(contentsOf: [version, 0])
        let length = header.utf8.count
        if version == 1 {
            out.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        } else {
            out.append(contentsOf: (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) })
        }
        out.append(contentsOf: Array(header.utf8))
        var body = [UInt8](repeating: 0, count: values.count * dtype.size)
        body.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() {
                switch dtype {
                case .float32: raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                case .float64: raw.storeBytes(of: Double(v).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                case .int16:
                    let clipped = Int16(max(-32768, min(32767, v.rounded())))
                    raw.storeBytes(of: clipped.littleEndian, toByteOffset: 2 * i, as: Int16.self)
                }
            }
        }
        out.append(contentsOf: body)
        return out
    }

    /// Reorders column-major values of `shape` into row-major order.
    static func fortranToC(_ values: [Float], shape: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        var cStrides = [Int](repeating: 1, count: shape.count)
        var fStrides = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { cStrides[d] = cStrides[d + 1] * shape[d + 1] }
        for d in 1..<shape.count { fStrides[d] = fStrides[d - 1] * shape[d - 1] }
        for c in 0..<values.count {
            var rest = c, f = 0
            for d in 0..<shape.count {
                let index = rest / cStrides[d]
                rest %= cStrides[d]
                f += index * fStrides[d]
            }
            out[c] = values[f]
        }
        return out
    }

    // MARK: header parsing

    private static func valueText(of key: String, in header: String, fail: (String) -> ParawaveError) throws -> Substring {
        for quote in ["'", "\""] {
            if let range = header.range(of: quote + key + quote) {
                let rest = header[range.upperBound...].drop { $0 == " " }
                guard rest.first == ":" else { break }
                return rest.dropFirst().drop { $0 == " " }
            }
        }
        throw fail("the header has no '\(key)' entry")
    }

    private static func stringValue(of key: String, in header: String, fail: (String) -> ParawaveError) throws -> String {
        let text = try valueText(of: key, in: header, fail: fail)
        guard let quote = text.first, quote == "'" || quote == "\"" else {
            throw fail("'\(key)' is not a plain type string (structured arrays are not supported)")
        }
        let body = text.dropFirst()
        guard let end = body.firstIndex(of: quote) else { throw fail("'\(key)' is not terminated") }
        return String(body[..<end])
    }

    private static func boolValue(of key: String, in header: String, fail: (String) -> ParawaveError) throws -> Bool {
        let text = try valueText(of: key, in: header, fail: fail)
        if text.hasPrefix("True") { return true }
        if text.hasPrefix("False") { return false }
        throw fail("'\(key)' is neither True nor False")
    }

    private static func shapeValue(in header: String, fail: (String) -> ParawaveError) throws -> [Int] {
        let text = try valueText(of: "shape", in: header, fail: fail)
        guard text.first == "(", let end = text.firstIndex(of: ")") else { throw fail("'shape' is not a tuple") }
        let inner = text[text.index(after: text.startIndex)..<end]
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if trimmed.isEmpty { continue }
            guard let value = Int(trimmed) else { throw fail("'shape' has a non-integer entry '\(trimmed)'") }
            shape.append(value)
        }
        return shape
    }
}
