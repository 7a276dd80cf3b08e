import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTraining

/// The parsers of outside input, each fed one byte string: what `make fuzz` drives with
/// libFuzzer, and what the regression tests replay on the inputs it found.
///
/// Every target must end in a value or a thrown ParawaveError, never a crash, a hang or an
/// allocation out of proportion to its input.
enum FuzzTarget: String, CaseIterable {
    case npy, safetensors, recipe, manifest, checkpoint, audio

    func run(_ data: Data) {
        switch self {
        case .npy:
            _ = try? NPY.decode(data, name: "fuzz.npy")
        case .safetensors:
            _ = try? SafeTensors.decode(data, name: "fuzz.safetensors")
        case .recipe:
            _ = try? Recipe.parse(String(decoding: data, as: UTF8.self), name: "fuzz.yaml")
        case .manifest:
            _ = try? DataDirectory.parseManifest(data, name: "fuzz.jsonl")
        case .checkpoint:
            // A checkpoint's config JSON and tensor table, through the model loaders.
            guard let file = try? SafeTensors.decode(data, name: "fuzz.safetensors") else { return }
            _ = try? Teacher.load(file, name: "fuzz")
            _ = try? Student.load(file, name: "fuzz")
        case .audio:
            // libsndfile reads from a file: one per process in the temporary folder.
            let path = NSTemporaryDirectory() + "/parawave-fuzz-\(getpid()).audio"
            guard FileManager.default.createFile(atPath: path, contents: data) else { return }
            _ = try? AudioFile.read(path)
        }
    }
}

#if FUZZING
/// libFuzzer's entry point; the target is named by PARAWAVE_FUZZ_TARGET.
nonisolated(unsafe) let fuzzTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["PARAWAVE_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set PARAWAVE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzTarget.run(Data(bytes: bytes, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point as MODULE_main: here it hands over to libFuzzer.
@_cdecl("parawave_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc, arguments = argv
    return runFuzzerDriver(&count, &arguments) { bytes, size in fuzzOne(bytes, size) }
}
#else
/// Without libFuzzer: `parawave-fuzz TARGET FILE...` runs each file through the target and
/// says so, the replay of a corpus or of a crash's input.
@main
struct Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: parawave-fuzz TARGET FILE... (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target.run(data)
                count += 1
            }
        }
        print("\(name): \(count) inputs, none crashed")
    }
}
#endif
