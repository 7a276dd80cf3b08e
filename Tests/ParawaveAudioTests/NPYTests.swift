import Foundation
import ParawaveAudio
import ParawaveTestSupport
import Testing

/// `.npy` interoperability with numpy (fixtures written by `np.save`).
struct NPYTests {
    let expected3x4: [Float] = (0..<12).map { Float($0) * 0.5 - 1.25 }

    @Test func readsFloat64InCAndFortranOrder() throws {
        for name in ["f64_c", "f64_fortran"] {
            let a = try NPY.read(Fixtures.path("npy/\(name).npy"))
            #expect(a.shape == [3, 4])
            #expect(a.dtype == "<f8")
            #expect(a.values == expected3x4, "\(name)")
        }
    }

    @Test func readsVersion2AndInt16And3DFortran() throws {
        let v2 = try NPY.read(Fixtures.path("npy/f32_v2.npy"))
        #expect(v2.shape == [3, 4] && v2.values == expected3x4)
        let ints = try NPY.read(Fixtures.path("npy/i16.npy"))
        #expect(ints.shape == [2, 3] && ints.values == [-32768, -1, 0, 1, 2, 32767])
        let cube = try NPY.read(Fixtures.path("npy/f32_3d_fortran.npy"))
        #expect(cube.shape == [2, 3, 4] && cube.values == (0..<24).map(Float.init))
        let line = try NPY.read(Fixtures.path("npy/f32_1d.npy"))
        #expect(line.shape == [3] && line.values == [1.5, -2.5, 3.25])
    }

    @Test func writerMatchesNumpyByteForByte() throws {
        let f32 = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("npy/numpy_written_f32.npy")))
        let ours = NPY.encode((-6..<6).map { Float($0) / 4 }, shape: [3, 4])
        #expect(ours == f32)
        let f64 = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("npy/numpy_written_f64_1d.npy")))
        let line: [Float] = (0..<7).map { Float(-1 + 2 * Double($0) / 6) }
        let ours64 = NPY.encode(line, shape: [7], dtype: .float64)
        // Same header; values equal after Float32 rounding of numpy's float64 linspace.
        #expect(ours64.prefix(128) == f64.prefix(128))
        let decoded = try NPY.decode(f64)
        #expect(decoded.values == line)
    }

    @Test(arguments: NPY.DType.allCases)
    func roundTripsEveryType(_ dtype: NPY.DType) throws {
        let values: [Float] = dtype == .int16 ? [-32768, -3, 0, 7, 32767, 12] : [-1.5, 0, 3.25, 1e-7, -2e5, .pi]
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/a.npy"
        try NPY.write(values, shape: [2, 3], to: path, dtype: dtype)
        let back = try NPY.read(path)
        #expect(back.shape == [2, 3])
        #expect(back.dtype == dtype.rawValue)
        #expect(back.values == values)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect((size - 6 * (dtype == .int16 ? 2 : dtype == .float32 ? 4 : 8)) % 64 == 0, "header padded to 64 bytes")
    }

    @Test func rejectsBadFilesWithClearMessages() throws {
        func message(_ data: Data) -> String {
            do { _ = try NPY.decode(data, name: "x.npy"); return "" } catch { return "\(error)" }
        }
        let good = NPY.encode([1, 2, 3, 4], shape: [2, 2])
        #expect(message(Data()).contains("empty"))
        #expect(message(Data("hello world, not numpy".utf8)).contains("magic"))
        #expect(message(good.prefix(good.count - 3)).contains("truncated"))
        var absurd = good
        absurd[8] = 0xFF; absurd[9] = 0xFF
        #expect(message(absurd).contains("past the end"))
        var v2 = Data(good.prefix(8))
        v2[6] = 2
        v2.append(contentsOf: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(message(v2).contains("absurd"))
        let bigEndian = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("npy/big_endian.npy")))
        #expect(message(bigEndian).contains("big-endian"))
        let object = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("npy/object.npy")))
        #expect(message(object).contains("object arrays"))
        #expect(message(good).isEmpty)
    }
}
