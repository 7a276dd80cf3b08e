// swift-tools-version:6.0
import PackageDescription

/// Parawave: neural waveform synthesis (WaveNet teacher, IAF student) on the CPU.
///
/// Modules by layer of abstraction:
/// - C edges, one module per library: CSndfile, CFFTW, CSoxr, CPNG, COpenBLAS, CZlib, CDNNL, CMPI.
/// - ParawaveCore: errors, atomic file writes, progress reporting.
/// - ParawaveAudio: audio I/O, resampling, STFT, mel front end, .npy, PNG images.
/// - ParawaveEngine: tensors, kernels and BLAS-backed matrix products.
/// - ParawaveModels: the WaveNet stack, teacher and student.
/// - ParawaveTraining: recipes, corpus preparation, training loops.
/// - parawave: the command-line tool; parawave-bench: the benchmarks.
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "Parawave",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "parawave", targets: ["parawave"]),
        .executable(name: "parawave-bench", targets: ["parawave-bench"]),
        .executable(name: "parawave-fuzz", targets: ["parawave-fuzz"]),
        .library(name: "ParawaveAudio", targets: ["ParawaveAudio"]),
        .library(name: "ParawaveEngine", targets: ["ParawaveEngine"]),
        .library(name: "ParawaveModels", targets: ["ParawaveModels"]),
        .library(name: "ParawaveTraining", targets: ["ParawaveTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CSndfile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),

        .target(name: "ParawaveCore", swiftSettings: release),
        .target(name: "ParawaveAudio", dependencies: ["ParawaveCore", "CSndfile", "CFFTW", "CSoxr", "CPNG"], swiftSettings: release),
        .target(name: "ParawaveEngine", dependencies: ["ParawaveCore", "COpenBLAS", "CZlib", "CDNNL"], swiftSettings: release),
        .target(name: "ParawaveModels", dependencies: ["ParawaveCore", "ParawaveAudio", "ParawaveEngine"], swiftSettings: release),
        .target(
            name: "ParawaveTraining",
            dependencies: ["ParawaveAudio", "ParawaveEngine", "ParawaveModels", "CMPI", .product(name: "Yams", package: "Yams")],
            swiftSettings: release),
        .executableTarget(
            name: "parawave",
            dependencies: ["ParawaveTraining", "ParawaveEngine", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: release),
        .executableTarget(name: "parawave-bench", dependencies: ["ParawaveTraining", "ParawaveModels", "CDNNL"], swiftSettings: release),
        // The parsers of outside input for libFuzzer (`make fuzz`), or, built normally, the
        // replay of its inputs.
        .executableTarget(name: "parawave-fuzz", dependencies: ["ParawaveTraining", "ParawaveModels"], swiftSettings: release),

        // Test-only helpers: fixture paths and scratch folders.
        .target(name: "ParawaveTestSupport", dependencies: ["ParawaveCore"], path: "Sources/ParawaveTestSupport"),
        .testTarget(name: "ParawaveCoreTests", dependencies: ["ParawaveCore", "ParawaveTestSupport"]),
        .testTarget(name: "ParawaveAudioTests", dependencies: ["ParawaveAudio", "ParawaveCore", "ParawaveTestSupport"]),
        .testTarget(name: "ParawaveEngineTests", dependencies: ["ParawaveEngine", "ParawaveAudio", "ParawaveTestSupport"]),
        .testTarget(name: "ParawaveModelsTests", dependencies: ["ParawaveModels", "ParawaveEngine", "ParawaveAudio", "ParawaveCore", "ParawaveTestSupport"]),
        .testTarget(name: "ParawaveTrainingTests", dependencies: ["ParawaveTraining", "ParawaveModels", "ParawaveEngine", "ParawaveAudio", "ParawaveCore", "ParawaveTestSupport"]),
        .testTarget(name: "ParawaveCLITests", dependencies: ["ParawaveTraining", "ParawaveModels", "ParawaveEngine", "ParawaveAudio", "ParawaveCore", "ParawaveTestSupport"]),
    ],
    // Kernels share raw buffers across worker threads by design (disjoint ranges);
    // Swift 5 mode keeps that explicit code free of Sendable ceremony.
    swiftLanguageModes: [.v5]
)
