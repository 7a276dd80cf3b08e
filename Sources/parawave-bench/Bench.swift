import CDNNL
import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTraining

/// `make bench`: speed figures for BENCHMARKS.md. Each figure is the median of several
/// timed runs after a warm-up. Usage: `parawave-bench [NAME ...]` (default: all but
/// `parallel`, which is meant to be run under `mpirun` as well as alone).
@main
struct Bench {
    static func main() throws {
        let selected = Set(CommandLine.arguments.dropFirst())
        let all: [(String, () throws -> Void)] = [("sgemm", sgemm), ("mel", mel), ("stack", stack), ("teacher", teacher), ("generate", generate),
                                                    ("synthesize", synthesize), ("distill", distill), ("spectral", spectral),
                                                    ("threads", threads), ("gate", gate), ("pitch", pitch), ("source", source),
                                                    ("bf16", bf16), ("waveglow", waveglow), ("mixture", mixture)]
        if selected == ["parallel"] { return parallel() }
        print("parawave-bench \(ParawaveVersion.string) on \(ProcessInfo.processInfo.activeProcessorCount) cores")
        for (name, run) in all where selected.isEmpty || selected.contains(name) { try run() }
    }

    /// Median wall time of `body` in seconds over `runs` runs after one warm-up.
    static func time(runs: Int = 7, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[runs / 2]
    }

    nonisolated(unsafe) static var peak = 0.0
    /// The bfloat16 GEMM peak (square products through oneDNN), measured by `bf16Peak()`.
    nonisolated(unsafe) static var bfloat16Peak = 0.0

    /// The precisions this CPU runs: float32, and bfloat16 where it has the arithmetic.
    /// `PARAWAVE_BENCH_PRECISION=single` or `bfloat16` keeps one.
    static var precisions: [MatrixPrecision] {
        let all: [MatrixPrecision] = BFloat16GEMM.isSupported ? [.single, .bfloat16] : [.single]
        guard let only = ProcessInfo.processInfo.environment["PARAWAVE_BENCH_PRECISION"].flatMap(MatrixPrecision.init) else { return all }
        return all.filter { $0 == only }
    }

    /// "" for float32; for bfloat16 the fraction of the bfloat16 peak as well.
    static func peakFractions(_ gflops: Double, _ precision: MatrixPrecision) -> String {
        if precision == .single { return String(format: "%5.1f%% of SGEMM peak", 100 * gflops / peak) }
        if bfloat16Peak == 0 { bf16Peak() }
        return String(format: "%5.1f%% of SGEMM peak, %5.1f%% of the bfloat16 peak", 100 * gflops / peak, 100 * gflops / bfloat16Peak)
    }

    /// The bfloat16 GEMM peak: the best of 1,024^3 and 2,048^3 through oneDNN.
    static func bf16Peak() {
        guard BFloat16GEMM.isSupported else { return }
        for n in [1024, 2048] {
            var rng = SeededGenerator(seed: 1)
            let a = (0..<(n * n)).map { _ in BFloat16.from(rng.normal()) }, b = (0..<(n * n)).map { _ in BFloat16.from(rng.normal()) }
            var c = [Float](repeating: 0, count: n * n)
            let seconds = time(runs: 3) { try? BFloat16GEMM.shared.gemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, beta: 0, c: &c, ldc: n) }
            bfloat16Peak = max(bfloat16Peak, 2 * Double(n * n * n) / seconds / 1e9)
        }
        print(String(format: "bf16   GEMM peak (oneDNN, 1024^3 and 2048^3)  %8.1f GFLOP/s", bfloat16Peak))
    }

    /// SGEMM GFLOP/s on square products: the machine's peak that the kernels are compared with.
    static func sgemm() {
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
            BLAS.setThreads(threads)
            for n in [512, 1024, 2048] {
                var rng = SeededGenerator(seed: 1)
                let a = (0..<(n * n)).map { _ in rng.normal() }, b = (0..<(n * n)).map { _ in rng.normal() }
                var c = [Float](repeating: 0, count: n * n)
                let seconds = time(runs: n >= 2048 ? 3 : 7) {
                    BLAS.sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
                }
                let gflops = 2 * Double(n) * Double(n) * Double(n) / seconds / 1e9
                print(String(format: "sgemm  %4d^3  threads %d  %8.1f GFLOP/s", n, threads, gflops))
                if threads > 1 { peak = max(peak, gflops) }
            }
        }
        BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }

    /// bfloat16 products through oneDNN (float32 accumulation and output) beside float32
    /// SGEMM on the same shapes: square ones for the peaks, and the shapes of a T-small layer
    /// (128 x 7,936 x 192: the stacked taps of one crop; 128 x 7,936 x 64: a 1x1). The operands'
    /// conversion to bfloat16 is timed separately.
    static func bf16() throws {
        guard BFloat16GEMM.isSupported else { print("bf16   this CPU has no bfloat16 arithmetic"); return }
        var bf16Peak = 0.0, floatPeak = 0.0
        for (m, n, k) in [(2048, 2048, 2048), (1024, 1024, 1024), (128, 7936, 192), (128, 7936, 64)] {
            var rng = SeededGenerator(seed: 1)
            let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(k * n)).map { _ in rng.normal() }
            let a16 = a.map(BFloat16.from), b16 = b.map(BFloat16.from)
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2 * Double(m) * Double(n) * Double(k)
            let single = time(runs: 5) { BLAS.sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n) }
            let half = try time(runs: 5) {
                try BFloat16GEMM.shared.gemm(m: m, n: n, k: k, a: a16, lda: k, b: b16, ldb: n, beta: 0, c: &c, ldc: n)
            }
            let oneDNNSingle = try time(runs: 5) {
                try BFloat16GEMM.shared.float32Gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, beta: 0, c: &c, ldc: n)
            }
            print(String(format: "bf16   %4d x %4d x %4d  float32: OpenBLAS %7.1f GFLOP/s, oneDNN %7.1f GFLOP/s", m, n, k,
                         flops / single / 1e9, flops / oneDNNSingle / 1e9))
            var scratch = [UInt16](repeating: 0, count: k * n)
            let convert = time(runs: 5) { b.withUnsafeBufferPointer { BFloat16.convert($0.baseAddress!, count: k * n, into: &scratch) } }
            if m == n { bf16Peak = max(bf16Peak, flops / half / 1e9); floatPeak = max(floatPeak, flops / single / 1e9) }
            print(String(format: "bf16   %4d x %4d x %4d  float32 %7.1f GFLOP/s  bfloat16 %7.1f GFLOP/s  (%.2fx; converting B: %.2f ms, %.0f%% of the product)",
                         m, n, k, flops / single / 1e9, flops / half / 1e9, single / half, convert * 1000, 100 * convert / half))
        }
        print(String(format: "bf16   peaks: bfloat16 %.1f GFLOP/s, float32 %.1f GFLOP/s (%.2fx)", bf16Peak, floatPeak, bf16Peak / floatPeak))
        generatorProducts()
    }

    /// The teacher generator's per-sample products at batch 1 on T-small's shapes (24 layers,
    /// each 128 x 192 for the taps and 128 x 64 for skip and residual; 1.6 MB of weights in
    /// 16 bits, beyond the core's L2): its Float16-weight kernel (F16C conversion, float32
    /// multiply-adds) against a bfloat16 kernel on vdpbf16ps, one core.
    static func generatorProducts() {
        var rng = SeededGenerator(seed: 11)
        let layers = 24, shapes = [(128, 192), (128, 64)]
        var halves: [PackedMatrix] = [], packed: [[UInt16]] = []
        for _ in 0..<layers {
            for (rows, columns) in shapes {
                let values = (0..<(rows * columns)).map { _ in 0.1 * rng.normal() }
                halves.append(PackedMatrix(rows: rows, columns: columns, precision: .half) { values[$0 * columns + $1] })
                // (columns / 2, rows, 2): the pair (2p, 2p + 1) of row o side by side.
                var w = [UInt16](repeating: 0, count: rows * columns)
                for p in 0..<(columns / 2) { for o in 0..<rows { for j in 0..<2 { w[(p * rows + o) * 2 + j] = BFloat16.from(values[o * columns + 2 * p + j]) } } }
                packed.append(w)
            }
        }
        let x = (0..<192).map { _ in rng.normal() }
        var y = [Float](repeating: 0, count: 128), pairs = [UInt32](repeating: 0, count: 96)
        let samples = 2000
        let half = time(runs: 5) {
            for _ in 0..<samples { for m in halves { m.product(y: &y, ldy: 128, x: x, ldx: 192, batch: 1) } }
        }
        let bf16 = time(runs: 5) {
            for _ in 0..<samples {
                for (i, w) in packed.enumerated() {
                    parawave_bf16_gemv(w, x, 128, Int(shapes[i % 2].1), &pairs, &y)
                }
            }
        }
        // The two kernels agree to bfloat16's rounding of the weights and the input.
        var reference = [Float](repeating: 0, count: 128)
        halves[0].product(y: &reference, ldy: 128, x: x, ldx: 192, batch: 1)
        parawave_bf16_gemv(packed[0], x, 128, 192, &pairs, &y)
        let scale = reference.map(abs).max() ?? 1
        let worst = zip(y, reference).map { abs($0 - $1) }.max() ?? 0
        print(String(format: "bf16   generator products agree to %.2e of the largest output", worst / scale))
        let macs = Double(layers * (128 * 192 + 128 * 64))
        print(String(format: "bf16   generator products, T-small, batch 1, one core: Float16 weights %.0f samples/s (%.1f GFLOP/s), "
                     + "bfloat16 vdpbf16ps %.0f samples/s (%.1f GFLOP/s): %.2fx",
                     Double(samples) / half, 2 * macs * Double(samples) / half / 1e9, Double(samples) / bf16,
                     2 * macs * Double(samples) / bf16 / 1e9, half / bf16))
    }

    /// The T-small residual stack (DESIGN.md section 9: 24 layers, 4 cycles of dilations 1..32,
    /// K 3, R 64, G 64, S 64, 80 mels) on a batch of 4 x 31 frames (7,936 samples each):
    /// forward, and forward + backward, as samples/s and as a fraction of the SGEMM peak.
    static func stack() {
        if peak == 0 { sgemm() }
        let config = WaveNetStackConfig(layers: 24, cycle: 6, kernelSize: 3, residualChannels: 64, gateOutChannels: 64,
                                        skipChannels: 64, conditionChannels: 80, hop: 256)
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "teacher", store: store)
        var generator = SeededGenerator(seed: 1)
        stack.initialise(store, generator: &generator)
        let B = 4, frames = 31, T = frames * 256
        let x = (0..<(B * T)).map { _ in 0.1 * generator.normal() }
        let mel = (0..<(B * 80 * frames)).map { _ in generator.normal() - 4 }
        let dSkip = (0..<(B * 64 * T)).map { _ in generator.normal() * 1e-3 }
        let a = stack.makeActivations(batch: B, frames: frames)
        let samples = Double(B * T)
        let macs = Double(config.multiplyAddsPerSample)
        let forward = time(runs: 5) { stack.forward(a, x: x, mel: mel, store: store) }
        let both = time(runs: 5) {
            stack.forward(a, x: x, mel: mel, store: store)
            store.zeroGradients()
            stack.backward(a, dSkip: dSkip, dX: nil, x: x, mel: mel, store: store)
        }
        for (label, seconds, passes) in [("forward", forward, 1.0), ("fwd+bwd", both, 3.0)] {
            let gflops = 2 * macs * passes * samples / seconds / 1e9
            print(String(format: "stack  T-small %@  B 4 x %d  %9.0f samples/s  %6.1f GFLOP/s  %5.1f%% of SGEMM peak",
                         label, T, samples / seconds, gflops, 100 * gflops / peak))
        }
        print(String(format: "stack  T-small: %.3f M multiply-adds per sample forward", macs / 1e6))
    }

    static func tSmall(output: SampleDistribution = .logistic) -> Teacher {
        let stack = WaveNetStackConfig(layers: 24, cycle: 6, kernelSize: 3, residualChannels: 64, gateOutChannels: 64,
                                       skipChannels: 64, conditionChannels: 80, hop: 256)
        let teacher = Teacher(config: TeacherConfig(stack: stack, mixtures: output == .logistic ? 10 : 1, mel: MelSettings(sampleRate: 16000),
                                                    output: output))
        teacher.initialise(seed: 1)
        return teacher
    }

    /// A T-small teacher's whole training step on a batch of 4 x 7,936 samples: forward, mixture
    /// NLL, backward, Adam with clipping and EMA. The fraction of peak counts the convolutions
    /// (stack and head) three times (forward, and the two products of the backward).
    static func teacher() {
        if peak == 0 { sgemm() }
        for precision in precisions {
            let teacher = tSmall()
            let (step, samples) = trainingStep(teacher, seed: 2)
            let seconds = time(runs: 5) { BLAS.withPrecision(precision, step) }
            let macs = Double(teacher.config.stack.multiplyAddsPerSample + 64 * 64 + 64 * 30)
            let gflops = 2 * macs * 3 * samples / seconds / 1e9
            print(String(format: "teacher T-small train step  %@  B 4 x %d  %9.0f samples/s  %6.1f GFLOP/s  %@  (%.0f ms/step)",
                         precision.rawValue, 31 * 256, samples / seconds, gflops, peakFractions(gflops, precision), seconds * 1000))
        }
    }

    /// One training step of `teacher` on a fixed random batch of 4 x 7,936 samples, and its
    /// sample count.
    static func trainingStep(_ teacher: Teacher, seed: UInt64) -> (() -> Void, Double) {
        var generator = SeededGenerator(seed: seed)
        let B = 4, frames = 31, T = frames * 256
        let x = (0..<(B * T)).map { _ in max(-1, min(1, 0.1 * generator.normal())) }
        let mel = (0..<(B * 80 * frames)).map { _ in generator.normal() - 4 }
        let a = teacher.makeActivations(batch: B, frames: frames)
        let adam = Adam(store: teacher.store, clipNorm: 10, emaDecay: 0.9999)
        let step = {
            teacher.store.zeroGradients()
            teacher.forward(a, audio: x, mel: mel)
            let (_, count) = teacher.loss(a, audio: x)
            teacher.backward(a, audio: x, count: count)
            adam.update(teacher.store, learningRate: 1e-4)
        }
        return (step, Double(B * T))
    }

    /// Data-parallel training steps, for the scaling table: the T-small teacher's step on a
    /// global batch of 4 x 7,936 and the S-small distillation step on 2 x 7,936 (N 16, the
    /// magnitude spectral loss), each rank working on its rows and the gradients summed in rank
    /// order (`Communicator`), as `train-teacher` and `distill` do. Alone it is one rank with
    /// the process's threads; under `mpirun -np N` it is N ranks. Rank 0 prints.
    static func parallel() {
        let world = Communicator.launchedByMPI ? Communicator.world : Communicator.single
        defer { world.finish() }
        let ranks = world.size, say = { (line: String) in if world.isRoot { print(line) } }
        let threads = world.gather(Int64(Parallel.threads))
        say("parawave-bench \(ParawaveVersion.string): \(ranks) rank\(ranks == 1 ? "" : "s") x \(threads.map(String.init).joined(separator: "/")) threads")
        if ranks > 1 {
            // The all-reduce alone, on a teacher's and a student's worth of gradients.
            for count in [1_063_854, 1_825_352] {
                var values = [Float](repeating: 1, count: count)
                let seconds = time(runs: 5) { values.withUnsafeMutableBufferPointer { world.sum($0) } }
                say(String(format: "parallel all-reduce of %d floats (%.1f MB)  %.1f ms  (%.2f GB/s of vector)", count, 4 * Double(count) / 1e6,
                           seconds * 1000, 4 * Double(count) / seconds / 1e9))
            }
        }
        var rng = SeededGenerator(seed: 2)
        let frames = 31, T = frames * 256
        func sum(_ values: [Double]) -> [Double] { world.sum(values) }
        for precision in precisions {
            // Teacher: 4 rows in all.
            let teacher = tSmall(), B = 4, local = B / ranks, offset = world.rank * local
            let x = (0..<(B * T)).map { _ in max(-1, min(1, 0.1 * rng.normal())) }
            let mel = (0..<(B * 80 * frames)).map { _ in rng.normal() - 4 }
            let myX = Array(x[(offset * T)..<((offset + local) * T)]), myMel = Array(mel[(offset * 80 * frames)..<((offset + local) * 80 * frames)])
            let a = teacher.makeActivations(batch: local, frames: frames)
            let adam = Adam(store: teacher.store, clipNorm: 10, emaDecay: 0.9999)
            let teacherStep = time(runs: 5) {
                BLAS.withPrecision(precision) {
                    teacher.store.zeroGradients()
                    teacher.forward(a, audio: myX, mel: myMel)
                    let (_, count) = teacher.loss(a, audio: myX)
                    teacher.backward(a, audio: myX, count: Int(sum([Double(count)])[0]))
                }
                world.sum(UnsafeMutableBufferPointer(start: teacher.store.gradients, count: teacher.store.count))
                adam.update(teacher.store, learningRate: 1e-4)
            }
            say(String(format: "parallel teacher T-small train step  %@  B 4 x %d  %d rank%@  %9.0f samples/s  (%.0f ms/step, all-reduce of %d floats)",
                       precision.rawValue, T, ranks, ranks == 1 ? "" : "s", Double(B * T) / teacherStep, teacherStep * 1000, teacher.store.count))

            // Distillation: 2 rows in all.
            let student = sSmall(), D = 2, rows = D / ranks, first = world.rank * rows, N = 16
            let dMel = (0..<(D * 80 * frames)).map { _ in rng.normal() - 4 }, audio = (0..<(D * T)).map { _ in 0.1 * rng.normal() }
            let z = Student.noise(count: D * T, generator: &rng), eps = Student.noise(count: N * D * T, generator: &rng)
            let myZ = Array(z[(first * T)..<((first + rows) * T)])
            var myEps: [Float] = []
            for k in 0..<N {
                let start: Int = k * D * T + first * T
                myEps += eps[start..<(start + rows * T)]
            }
            let settings = Distillation.Settings(mcSamples: N, spectral: SpectralLoss(kind: .magnitude, resolutions: SpectralLoss.defaultResolutions(kind: .magnitude)),
                                                 spectralWeight: 1)
            let distillation = Distillation(student: student, teacher: teacher, batch: rows, frames: frames, settings: settings)
            let shard = BatchShard(offset: first, count: rows, total: D, sum: sum)
            let myDMel = Array(dMel[(first * 80 * frames)..<((first + rows) * 80 * frames)]), myAudio = Array(audio[(first * T)..<((first + rows) * T)])
            let studentAdam = Adam(store: student.store, clipNorm: 10, emaDecay: 0.999)
            let distillStep = time(runs: 3) {
                BLAS.withPrecision(precision) {
                    student.store.zeroGradients()
                    _ = distillation.evaluate(mel: myDMel, audio: myAudio, mask: nil, noise: myZ, samples: myEps, gradients: true, shard: shard)
                }
                world.sum(UnsafeMutableBufferPointer(start: student.store.gradients, count: student.store.count))
                studentAdam.update(student.store, learningRate: 1e-4)
            }
            say(String(format: "parallel distill S-small from T-small  %@  B 2 x %d  N %d  %d rank%@  %9.0f samples/s  (%.0f ms/step, all-reduce of %d floats)",
                       precision.rawValue, T, N, ranks, ranks == 1 ? "" : "s", Double(D * T) / distillStep, distillStep * 1000, student.store.count))
        }
    }

    /// Fast WaveNet sampling with a T-small teacher, 2 s of audio per utterance, batch 1 and 8.
    static func generate() {
        if peak == 0 { sgemm() }
        let teacher = tSmall()
        var rng = SeededGenerator(seed: 3)
        let frames = 125
        for (batch, threads, precision) in [(1, 1, PackedMatrix.Precision.single), (1, 2, .single), (1, 1, .half), (1, 2, .half),
                                            (8, 1, .single), (8, 2, .single), (8, 2, .half)] {
            let mels = (0..<batch).map { _ in Matrix(rows: 80, columns: frames, values: (0..<(80 * frames)).map { _ in rng.normal() - 4 }) }
            let generator = TeacherGenerator(teacher: teacher, batch: batch, threads: threads, precision: precision)
            let seconds = time(runs: 3) { _ = generator.generate(mels: mels, seed: 1) }
            let samples = Double(batch * frames * 256)
            let macs = Double(teacher.config.stack.multiplyAddsPerSample + 64 * 64 + 64 * 30)
            let gflops = 2 * macs * samples / seconds / 1e9
            print(String(format: "generate T-small batch %d  threads %d  \(precision == .half ? "f16" : "f32") weights  %9.0f samples/s  (%.2fx real time at 16 kHz)  %6.1f GFLOP/s  %5.1f%% of SGEMM peak",
                         batch, threads, samples / seconds, samples / seconds / 16000, gflops, 100 * gflops / peak))
        }
    }

    /// The S-small student (DESIGN.md section 9: 4 flows x 10 layers, dilations 1..512, K 3,
    /// R 64, G 64, S 64, 80 mels).
    static func sSmall(noise: SampleDistribution = .logistic) -> Student {
        let flow = WaveNetStackConfig(layers: 10, cycle: 10, kernelSize: 3, residualChannels: 64, gateOutChannels: 64, skipChannels: 64,
                                      conditionChannels: 80, hop: 256)
        let student = Student(config: StudentConfig(flows: Array(repeating: flow, count: 4), mel: MelSettings(sampleRate: 16000), noise: noise))
        student.initialise(seed: 1)
        return student
    }

    /// Parallel synthesis of 10 s of 16 kHz audio with S-small at batch 1, in the chunks
    /// `render` uses (the overlap is counted as work done, not as output) and in one pass.
    static func synthesize() {
        if peak == 0 { sgemm() }
        let student = sSmall()
        var rng = SeededGenerator(seed: 4)
        let frames = 625, samples = Double(frames * 256)
        let mel = Matrix(rows: 80, columns: frames, values: (0..<(80 * frames)).map { _ in rng.normal() - 4 })
        let noise = Student.noise(count: frames * 256, generator: &rng)
        let macs = Double(student.config.multiplyAddsPerSample), executed = Double(student.config.synthesisMultiplyAddsPerSample)
        // render's chunk sizes: each chunk recomputes the flows' receptive field on its left.
        for precision in precisions {
            for chunk in [128, 256, 512, frames] {
                let seconds = time(runs: 3) { BLAS.withPrecision(precision) { _ = student.synthesize(mel: mel, noise: noise, chunkFrames: chunk) } }
                let gflops = 2 * executed * samples / seconds / 1e9, nominal = 2 * macs * samples / seconds / 1e9
                print(String(format: "synthesize S-small %@ 10 s batch 1 chunks of %3d frames  %9.0f samples/s  (%.2fx real time)  %6.1f GFLOP/s  %@  (model's multiply-adds: %5.1f%% of SGEMM peak)",
                             precision.rawValue, chunk, samples / seconds, samples / seconds / 16000, gflops, peakFractions(gflops, precision), 100 * nominal / peak))
            }
        }
        print(String(format: "synthesize S-small: %.3f M multiply-adds per sample in the model, %.3f M computed per sample (the conditioning "
                     + "products per frame), receptive field %d samples", macs / 1e6, executed / 1e6, student.config.receptiveField))
    }

    /// One distillation step of S-small from T-small on 2 x 7,936 samples with 16 samples per
    /// time step and the magnitude spectral loss: student forward and backward, teacher forward
    /// and backward to its input, Adam; then the same from a Gaussian T-small in closed form
    /// (no samples per time step), with the log-scale penalty.
    static func distill() {
        distill(output: .logistic)
        distill(output: .gaussian)
    }

    static func distill(output: SampleDistribution) {
        if peak == 0 { sgemm() }
        let student = sSmall(noise: output), teacher = tSmall(output: output)
        var rng = SeededGenerator(seed: 5)
        let B = 2, frames = 31, T = frames * 256, N = output == .logistic ? 16 : 0
        let mel = (0..<(B * 80 * frames)).map { _ in rng.normal() - 4 }
        let audio = (0..<(B * T)).map { _ in 0.1 * rng.normal() }
        var settings = Distillation.Settings(mcSamples: N, spectral: SpectralLoss(kind: .magnitude, resolutions: SpectralLoss.defaultResolutions(kind: .magnitude)),
                                             spectralWeight: 1)
        if output == .gaussian { settings.logScalePenaltyWeight = 4 }
        let distillation = Distillation(student: student, teacher: teacher, batch: B, frames: frames, settings: settings)
        let adam = Adam(store: student.store, clipNorm: 10, emaDecay: 0.999)
        let z = student.noise(count: B * T, generator: &rng), eps = Student.noise(count: N * B * T, generator: &rng)
        for precision in precisions {
            let seconds = time(runs: 3) {
                BLAS.withPrecision(precision) {
                    student.store.zeroGradients()
                    _ = distillation.evaluate(mel: mel, audio: audio, mask: nil, noise: z, samples: eps, gradients: true)
                    adam.update(student.store, learningRate: 1e-4)
                }
            }
            let samples = Double(B * T)
            // Student: forward + two backward products; teacher: forward + the input-gradient product.
            let macs = 3 * Double(student.config.multiplyAddsPerSample)
                + 2 * Double(teacher.config.stack.multiplyAddsPerSample + 64 * 64 + 64 * teacher.config.outputChannels)
            let gflops = 2 * macs * samples / seconds / 1e9
            let label = output == .logistic ? "N \(N)" : "Gaussian, closed form"
            print(String(format: "distill S-small from T-small  %@  B 2 x %d  %@  %9.0f samples/s  %6.1f GFLOP/s  %@  (%.0f ms/step)",
                         precision.rawValue, T, label, samples / seconds, gflops, peakFractions(gflops, precision), seconds * 1000))
        }
    }

    /// WG-small (12 flows over groups of 8, 2 channels out every 4, coupling networks of 8
    /// layers x 64 channels, 80 mels, hop 256): a training step on 4 x 7,936 samples (forward,
    /// backward, Adam) and synthesis of 10 s at batch 1 in 256-frame chunks (render's way) and
    /// in one pass, in each precision, beside S-small's multiply-adds per sample.
    static func waveglow() {
        if peak == 0 { sgemm() }
        let config = WaveGlowConfig(flows: 12, group: 8, earlyEvery: 4, earlySize: 2, layers: 8, residualChannels: 64, kernelSize: 3,
                                    mel: MelSettings(sampleRate: 16000))
        let macs = Double(config.multiplyAddsPerSample()), everyStep = Double(config.multiplyAddsPerSample(everyStep: true))
        print(String(format: "waveglow WG-small: %.3f M multiply-adds per sample as computed, %.3f M with the conditioning at every step (S-small: %.3f M)",
                     macs / 1e6, everyStep / 1e6, Double(sSmall().config.multiplyAddsPerSample) / 1e6))
        for precision in precisions {
            let model = WaveGlow(config: config)
            model.initialise(seed: 1)
            var rng = SeededGenerator(seed: 12)
            let B = 4, frames = 31, T = frames * 256
            let audio = (0..<(B * T)).map { _ in 0.1 * rng.normal() }
            let mel = (0..<(B * 80 * frames)).map { _ in rng.normal() - 4 }
            let a = model.makeActivations(batch: B, frames: frames)
            let adam = Adam(store: model.store, clipNorm: 10, emaDecay: 0.9999)
            let step = time(runs: 3) {
                BLAS.withPrecision(precision) {
                    model.store.zeroGradients()
                    model.forward(a, audio: audio, mel: mel)
                    model.backward(a)
                    adam.update(model.store, learningRate: 1e-4)
                }
            }
            let trainingGFLOPS = 2 * macs * 3 * Double(B * T) / step / 1e9
            print(String(format: "waveglow WG-small train step  %@  B 4 x %d  %9.0f samples/s  %6.1f GFLOP/s  %@",
                         precision.rawValue, T, Double(B * T) / step, trainingGFLOPS, peakFractions(trainingGFLOPS, precision)))
            let synthFrames = 625, samples = Double(synthFrames * 256)
            let synthMel = Matrix(rows: 80, columns: synthFrames, values: (0..<(80 * synthFrames)).map { _ in rng.normal() - 4 })
            let z = (0..<(synthFrames * 256)).map { _ in 0.6 * rng.normal() }
            for chunk in [256, Student.defaultChunkFrames, synthFrames] {
                let seconds = time(runs: 3) { BLAS.withPrecision(precision) { _ = model.synthesize(mel: synthMel, z: z, chunkFrames: chunk) } }
                let gflops = 2 * macs * samples / seconds / 1e9
                print(String(format: "waveglow WG-small synthesize %@ 10 s batch 1 chunks of %3d frames (context %d each side)  %9.0f samples/s  (%.2fx real time)  %6.1f GFLOP/s  %@",
                             precision.rawValue, chunk, model.chunkContext, samples / seconds, samples / seconds / 16000, gflops,
                             peakFractions(gflops, precision)))
            }
        }
    }

    /// The thread policy: OpenBLAS's pool and the toolkit's own loops (`Parallel`) each at 1 or
    /// 2 threads, on a T-small training step (B 4 x 7,936) and S-small synthesis of 5 s in one
    /// pass. The two are never run at the same moment, so both may use every core.
    static func threads() {
        if peak == 0 { sgemm() }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let teacher = tSmall(), student = sSmall()
        let (trainingStep, trainingSamples) = trainingStep(teacher, seed: 7)
        var generator = SeededGenerator(seed: 8)
        let synthFrames = 313
        let synthMel = Matrix(rows: 80, columns: synthFrames, values: (0..<(80 * synthFrames)).map { _ in generator.normal() - 4 })
        let noise = Student.noise(count: synthFrames * 256, generator: &generator)
        for (blas, own) in [(cores, cores), (1, cores), (cores, 1), (1, 1)] {
            BLAS.setThreads(blas)
            Parallel.threads = own
            let step = time(runs: 3, trainingStep)
            let synthesis = time(runs: 3) { _ = student.synthesize(mel: synthMel, noise: noise, chunkFrames: synthFrames) }
            print(String(format: "threads BLAS %d own %d  T-small train step %8.0f samples/s  S-small synthesis %8.0f samples/s",
                         blas, own, trainingSamples / step, Double(synthFrames * 256) / synthesis))
        }
        BLAS.setThreads(cores)
        Parallel.threads = cores
    }

    /// The gated unit tanh(a) * sigmoid(b) on one 1,024-sample tile of G = 64 channels (the
    /// shape of the forward-only pass), one thread: nanoseconds per output element.
    static func gate() {
        var rng = SeededGenerator(seed: 8)
        let G = 64, n = 1024, reps = 2000
        let h = (0..<(2 * G * n)).map { _ in 2 * rng.normal() }
        var z = [Float](repeating: 0, count: G * n)
        Parallel.threads = 1
        let seconds = time(runs: 5) {
            h.withUnsafeBufferPointer { hp in
                z.withUnsafeMutableBufferPointer { zp in
                    for _ in 0..<reps { GatedUnit.forward(out: zp.baseAddress!, inp: hp.baseAddress!, batch: 1, channels: G, length: n) }
                }
            }
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
        print(String(format: "gate   tanh(a) * sigmoid(b), G %d x %d, 1 thread  %6.2f ns per element", G, n, seconds / Double(reps * G * n) * 1e9))
    }

    /// The continuous mixture of 10 logistics that distillation scores the student's samples
    /// with (N 16 draws of 2 x 7,936 samples a step): the density and its gradients, on one
    /// thread, on the vector path and on the scalar one.
    static func mixture() {
        var rng = SeededGenerator(seed: 9)
        let M = 10, T = 16 * 2 * 7936
        var params = [Float](repeating: 0, count: 3 * M * T)
        for i in 0..<(M * T) { params[i] = rng.normal() }
        for i in (M * T)..<(2 * M * T) { params[i] = 0.1 * rng.normal() }
        for i in (2 * M * T)..<(3 * M * T) { params[i] = -4 + rng.normal() }
        let x = (0..<T).map { _ in 0.1 * rng.normal() }, weights = (0..<T).map { _ in rng.normal() }
        var logp = [Float](repeating: 0, count: T), dParams = params, dX = x
        Parallel.threads = 1
        for vectorised in [true, false] {
            let mixture = LogisticMixture(mixtures: M, vectorised: vectorised)
            let seconds = time(runs: 3) {
                mixture.forward(logDensity: &logp, params: params, x: x, batch: 1, length: T)
                mixture.backward(dParams: &dParams, dX: &dX, dLogDensity: weights, params: params, x: x, batch: 1, length: T)
            }
            print(String(format: "mixture of %d logistics, density + gradients, 1 thread, %@  %6.1f ns per sample  (%.0f ms for N 16 x 2 x 7,936)",
                         M, vectorised ? "vectors" : "scalar ", seconds / Double(T) * 1e9, seconds * 1000))
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
    }

    /// The spectral losses with their gradients on 2 x 8,000 samples.
    static func spectral() {
        var rng = SeededGenerator(seed: 6)
        let n = 2 * 8000
        let x = (0..<n).map { _ in 0.1 * rng.normal() }, y = (0..<n).map { _ in 0.1 * rng.normal() }
        var dX = [Float](repeating: 0, count: n)
        for kind in SpectralLoss.Kind.allCases {
            let loss = SpectralLoss(kind: kind, resolutions: SpectralLoss.defaultResolutions(kind: kind))
            let seconds = time(runs: 11) { _ = loss.evaluate(x: x, y: y, batch: 2, length: 8000, dX: &dX, weight: 1) }
            print(String(format: "spectral %@ loss + gradient  B 2 x 8000  %7.2f ms", kind.rawValue, seconds * 1000))
        }
    }

    /// pYIN F0 tracking (DESIGN.md section 10 defaults: 50-550 Hz, frames of 1024 every 256
    /// samples) of 60 s of 16 kHz audio with a gliding voiced source and noise, and STOI of
    /// the same minute against a noisy copy.
    static func pitch() throws {
        var rng = SeededGenerator(seed: 4)
        var phase = 0.0
        let samples = (0..<(60 * 16000)).map { i -> Float in
            let t = Double(i) / 16000
            phase += 2 * Double.pi * (140 + 40 * sin(2 * Double.pi * 0.5 * t)) / 16000
            let voiced = sin(2 * Double.pi * 0.3 * t) > -0.3
            return (voiced ? Float(0.3 * sin(phase) + 0.15 * sin(2 * phase) + 0.08 * sin(3 * phase)) : 0) + 0.02 * rng.normal()
        }
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
            Parallel.threads = threads
            let tracker = try PitchTracker(settings: PitchSettings())
            let seconds = time(runs: 5) { _ = tracker.track(samples) }
            print(String(format: "pitch  pYIN 60 s @ 16 kHz  threads %d  %7.1f ms  %8.0fx real time", threads, seconds * 1000, 60 / seconds))
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
        let noisy = samples.map { $0 + 0.05 * rng.normal() }
        let seconds = time(runs: 5) { _ = try! STOI.score(reference: samples, degraded: noisy, sampleRate: 16000) }
        print(String(format: "stoi   60 s @ 16 kHz  %7.1f ms  %8.0fx real time", seconds * 1000, 60 / seconds))
    }

    /// Generation and synthesis with a sine source (teacher.source sine): T-small's batch-1
    /// generation (two workers, Float16 weights) and S-small's 10 s synthesis, against the
    /// same models without a source.
    static func source() {
        var rng = SeededGenerator(seed: 6)
        let sine = SineSource()
        for withSource in [false, true] {
            var stack = tSmall().config.stack
            stack.sourceChannels = withSource ? 1 : 0
            let teacher = Teacher(config: TeacherConfig(stack: stack, mixtures: 10, mel: MelSettings(sampleRate: 16000), source: withSource ? sine : nil))
            teacher.initialise(seed: 1)
            let frames = 125
            let mel = Matrix(rows: 80, columns: frames, values: (0..<(80 * frames)).map { _ in rng.normal() - 4 })
            let f0 = [Float](repeating: 150, count: frames)
            let sources = withSource ? [teacher.sourceSignal(f0: f0, samples: frames * 256)!] : nil
            let generator = TeacherGenerator(teacher: teacher, batch: 1, threads: 2, precision: .half)
            let seconds = time(runs: 3) { _ = generator.generate(mels: [mel], sources: sources, seed: 1) }
            print(String(format: "source generate T-small batch 1  threads 2  f16 weights  %@  %9.0f samples/s", withSource ? "sine source" : "no source  ",
                         Double(frames * 256) / seconds))
        }
        for withSource in [false, true] {
            var flow = WaveNetStackConfig(layers: 10, cycle: 10, kernelSize: 3, residualChannels: 64, gateOutChannels: 64, skipChannels: 64,
                                          conditionChannels: 80, hop: 256)
            flow.sourceChannels = withSource ? 1 : 0
            let student = Student(config: StudentConfig(flows: Array(repeating: flow, count: 4), mel: MelSettings(sampleRate: 16000),
                                                        source: withSource ? sine : nil))
            student.initialise(seed: 1)
            let frames = 625
            let mel = Matrix(rows: 80, columns: frames, values: (0..<(80 * frames)).map { _ in rng.normal() - 4 })
            let noise = Student.noise(count: frames * 256, generator: &rng)
            let source = withSource ? student.sourceSignal(f0: [Float](repeating: 150, count: frames), samples: frames * 256) : nil
            let seconds = time(runs: 3) { _ = student.synthesize(mel: mel, noise: noise, source: source) }
            print(String(format: "source synthesize S-small 10 s  %@  %9.0f samples/s", withSource ? "sine source" : "no source  ",
                         Double(frames * 256) / seconds))
        }
    }

    /// Log-mel extraction (DESIGN.md defaults) of 60 s of 16 kHz audio.
    static func mel() throws {
        var rng = SeededGenerator(seed: 2)
        let samples = (0..<(60 * 16000)).map { i in 0.3 * Float(sin(Double(i) * 0.07)) + 0.05 * rng.normal() }
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
            Parallel.threads = threads
            let threaded = try MelSpectrogram(settings: MelSettings())
            let seconds = time(runs: 11) { _ = threaded.logMel(samples) }
            print(String(format: "mel    60 s @ 16 kHz  threads %d  %7.2f ms  %8.0fx real time", threads, seconds * 1000, 60 / seconds))
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
    }
}
