import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// Checkpoints as safetensors: byte-compatible with Python's writer, every dtype it writes
/// readable, exact round trips, and each kind of damage a clear error.
struct SafeTensorsTests {
    static let expectedF32: [String: SafeTensors.Tensor] = [
        "layers.0.weight": .init(shape: [2, 3, 4], values: (0..<24).map { Float($0) / 8 - 1 }),
        "layers.0.bias": .init(shape: [3], values: [0.5, -0.25, 3e-8]),
        "head": .init(shape: [2, 2], values: [1, -2, Float(Double.pi), 1e30]),
    ]
    static let metadata = ["kind": "teacher", "format_version": "1", "step": "42",
                           "config": "{\"layers\": 3, \"name\": \"caf\u{e9} \"q\"\"}", "note": "line\nbreak/slash \u{e9}"]

    @Test func writerMatchesPythonByteForByte() throws {
        let python = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("engine/st_f32.safetensors")))
        #expect(SafeTensors(tensors: Self.expectedF32).encode(checksum: false) == python)
        // With metadata (which Python orders arbitrarily): the same content, read back.
        let withMeta = try SafeTensors.read(Fixtures.path("engine/st_f32_meta.safetensors"))
        #expect(withMeta.metadata == Self.metadata)
        #expect(withMeta.tensors == Self.expectedF32)
        let ours = SafeTensors(tensors: Self.expectedF32, metadata: Self.metadata).encode(checksum: false)
        #expect(try SafeTensors.decode(ours) == withMeta)
        #expect(ours.count == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("engine/st_f32_meta.safetensors")))).count)
    }

    @Test func readsEveryDtypePythonWrites() throws {
        let file = try SafeTensors.read(Fixtures.path("engine/st_mixed.safetensors"))
        #expect(file.metadata == ["kind": "mixed"])
        for name in ["half", "brain", "double", "single"] {
            let expected = try NPY.read(Fixtures.path("engine/st_mixed_\(name).npy"))
            let tensor = try #require(file.tensors[name])
            #expect(tensor.shape == [2, 3])
            #expect(tensor.values == expected.values, "\(name)")
        }
        #expect(file.tensors["half"]?.dtype == "F16" && file.tensors["brain"]?.dtype == "BF16")
    }

    @Test func roundTripIsBitExactThroughTheFile() throws {
        var g = SeededGenerator(seed: 9)
        let values = (0..<1000).map { _ in g.normal() } + [.infinity, -.infinity, .leastNonzeroMagnitude, -0.0]
        let original = SafeTensors(tensors: ["w": .init(shape: [4, 251], values: values)], metadata: ["step": "7"])
        let path = Fixtures.temporaryDirectory() + "/model.safetensors"
        try original.write(to: path)
        let back = try SafeTensors.read(path)
        #expect(back.tensors["w"]!.values.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(back.encode() == original.encode())
        #expect(throws: ParawaveError.self) { _ = try back.tensor("w", shape: [1000]) }
        #expect(throws: ParawaveError.self) { _ = try back.tensor("v", shape: [4, 251]) }
        #expect(try back.tensor("w", shape: [4, 251]).count == 1004)
    }

    func message(_ data: Data) -> String {
        do { _ = try SafeTensors.decode(data, name: "m.safetensors"); return "" } catch { return "\(error)" }
    }

    func file(header: String, data: Int) -> Data {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(Data(count: data))
        return bytes
    }

    @Test func damagedFilesAreClearErrors() throws {
        let good = SafeTensors(tensors: Self.expectedF32, metadata: Self.metadata).encode()
        #expect(message(good).isEmpty)
        #expect(message(Data()).contains("empty"))
        #expect(message(good.prefix(5)).contains("truncated"))
        #expect(message(good.prefix(good.count - 4)).contains("outside"))
        var long = good
        long[0] = 0xFF; long[1] = 0xFF; long[2] = 0x0F
        #expect(message(long).contains("runs past the end"))
        var absurd = good
        absurd[6] = 0x10
        #expect(message(absurd).contains("absurd"))
        #expect(message(file(header: "[1, 2]", data: 0)).contains("not a JSON object"))
        #expect(message(file(header: #"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#, data: 2)).contains("dtype I8"))
        #expect(message(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12)).contains("overlap"))
        #expect(message(file(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8)).contains("needs 12"))
        #expect(message(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: 8)).contains("outside"))
        #expect(message(file(header: #"{"a":{"dtype":"F32","shape":[2]}}"#, data: 8)).contains("lacks"))
        #expect(message(file(header: #"{"__metadata__":{"step":3}}"#, data: 0)).contains("not a string"))
        #expect(throws: ParawaveError.self) { _ = try SafeTensors.read("/nonexistent/x.safetensors") }
    }

    /// The checksum: written by default (zlib's CRC-32 of the tensor bytes, as Python's
    /// zlib.crc32 gives it), removed from the metadata on reading, and a flipped bit in
    /// any tensor byte is an error naming the file; Python's files, without one, load.
    @Test func checksumFindsDamagedTensorBytes() throws {
        let original = SafeTensors(tensors: Self.expectedF32, metadata: Self.metadata)
        let good = original.encode()
        #expect(try SafeTensors.decode(good) == original)
        let plain = original.encode(checksum: false)
        let dataStart = 8 + good.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        // Python: zlib.crc32 of the tensor bytes of engine/st_f32.safetensors.
        #expect(String(decoding: good.prefix(dataStart), as: UTF8.self).contains("\"parawave.crc32\":\"40eec1f4\""))
        var g = SeededGenerator(seed: 4)
        for _ in 0..<20 {
            var damaged = good
            let at = dataStart + Int(g.next() % UInt64(good.count - dataStart))
            damaged[at] ^= UInt8(1) << UInt8(g.next() % 8)
            #expect(message(damaged).contains("fail their checksum"), "byte \(at)")
        }
        #expect(message(plain).isEmpty)
        #expect(try SafeTensors.read(Fixtures.path("engine/st_mixed.safetensors")).metadata == ["kind": "mixed"])
    }
}
