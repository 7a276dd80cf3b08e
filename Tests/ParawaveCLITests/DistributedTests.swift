import Foundation
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// Data-parallel training under Open MPI's `mpirun` (installed by `make`): 2 ranks against 1
/// with the same global batch, resuming with another rank count, and a rank that dies or
/// hangs.
@Suite(.serialized)
struct DistributedTests {
    /// The tiny teacher of the CLI tests, with 4 rows per batch (2 per rank).
    static let teacher = ["--set", "train.batch_size=4", "--set", "train.precision=single", "--set", "train.checkpoint_every=5",
                          "--set", "train.validate_every=5", "--set", "train.validation_utterances=2"]
    /// A tiny student with every term a rank must share: the multi-resolution spectral loss
    /// (a norm over the whole batch), the contrastive term (each row's next utterance, across
    /// ranks) and the adversarial one (its own discriminator, summed gradients).
    static let student = ["--set", "student.flows=[2, 2]", "--set", "student.residual_channels=8", "--set", "student.gate_channels=16",
                          "--set", "student.skip_channels=8", "--set", "distill.crop=1024", "--set", "distill.mc_samples=2",
                          "--set", "distill.validation_utterances=2", "--set", "distill.batch_size=4", "--set", "distill.precision=single",
                          "--set", "distill.spectral_loss={kind: multi_resolution, weight: 1}", "--set", "distill.contrastive_weight=0.1",
                          "--set", "distill.adversarial_weight=0.1", "--set", "distill.adversarial_start=2", "--set", "distill.checkpoint_every=3"]

    /// Every float tensor of two checkpoints agrees to 1e-5 relative (in norm), but Adam's
    /// moments to 1e-4 (they hold the gradients, and their squares, whose rounding the update
    /// divides away); returns the largest relative difference of the weights and whether the
    /// files are bit-identical.
    static func compare(_ a: String, _ b: String) throws -> (worst: Double, identical: Bool) {
        let x = try SafeTensors.read(a), y = try SafeTensors.read(b)
        #expect(Set(x.tensors.keys) == Set(y.tensors.keys))
        var worst = 0.0, identical = true
        for (name, t) in x.tensors {
            guard let u = y.tensors[name] else { continue }
            #expect(t.shape == u.shape, "\(name)")
            var difference = 0.0, norm = 0.0
            for (p, q) in zip(t.values, u.values) {
                difference += Double(p - q) * Double(p - q)
                norm += Double(p) * Double(p)
                if p.bitPattern != q.bitPattern { identical = false }
            }
            let relative = difference.squareRoot() / max(norm.squareRoot(), 1e-12)
            let moment = name.hasSuffix("adam.m") || name.hasSuffix("adam.v")
            let tolerance = moment ? 1e-4 : 1e-5
            if !moment { worst = max(worst, relative) }
            #expect(relative <= tolerance, "\(name) of \(a) and \(b): \(relative) relative")
        }
        #expect(x.metadata["step"] == y.metadata["step"])
        return (worst, identical)
    }

    /// Main's files only: nothing partial or temporary in a run directory.
    static func expectOnlyRunFiles(_ run: String) throws {
        let known: Set<String> = ["model.safetensors", "train-state.safetensors", "recipe.yaml", "metrics.jsonl", "samples", ".lock"]
        let files = try FileManager.default.contentsOfDirectory(atPath: run)
        #expect(files.allSatisfy { known.contains($0) }, "\(files)")
    }

    /// A 2-rank run of the tiny teacher for 10 steps ends with the weights of a 1-rank run of
    /// the same global batch, to 1e-5 relative (measured: about 1e-8) (not bit-identical: one process sums a batch's
    /// gradient inside each product, two sum their halves' products); so do the Adam moments,
    /// the EMA and the metrics, which rank 0 alone writes. A run started on 2 ranks and resumed
    /// on 1 ends the same, and so does a source-conditioned teacher with its pitch predictor on
    /// 3 ranks; a batch that does not divide over the ranks is a clear error.
    @Test func teacherOnTwoRanksMatchesOne() throws {
        let dir = try CLITests().tinyCorpus()
        let common = ["train-teacher", "--data", dir + "/data", "--recipe", dir + "/r.yaml", "--steps", "10"] + Self.teacher
        let one = try CommandRunner.parawave(common + ["--run", dir + "/one"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try CommandRunner.mpirun(ranks: 2, common + ["--run", dir + "/two"])
        #expect(two.status == 0, "\(two.stdout)\(two.stderr)")
        #expect(two.stdout.contains("data parallel over 2 ranks, 2 of the 4 rows of each batch per rank; rank 0:"), "\(two.stdout)")
        #expect(two.stdout.components(separatedBy: "step 10: training loss").count == 2, "rank 0 alone prints: \(two.stdout)")
        let compared = try Self.compare(dir + "/one/train-state.safetensors", dir + "/two/train-state.safetensors")
        _ = try Self.compare(dir + "/one/model.safetensors", dir + "/two/model.safetensors")
        #expect(compared.worst > 0 || compared.identical)
        let lines = { (run: String) in try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") }
        #expect(try lines(dir + "/one").count == lines(dir + "/two").count)
        try Self.expectOnlyRunFiles(dir + "/two")

        // Started on 2 ranks, resumed on 1.
        let first = try CommandRunner.mpirun(ranks: 2, ["train-teacher", "--data", dir + "/data", "--recipe", dir + "/r.yaml", "--steps", "5",
                                                        "--run", dir + "/mixed"] + Self.teacher)
        #expect(first.status == 0, "\(first.stderr)")
        let second = try CommandRunner.parawave(["train-teacher", "--data", dir + "/data", "--run", dir + "/mixed", "--resume", "--steps", "10"])
        #expect(second.status == 0, "\(second.stderr)")
        _ = try Self.compare(dir + "/one/train-state.safetensors", dir + "/mixed/train-state.safetensors")

        // A source-conditioned teacher (a sine source, and a pitch predictor whose 16 crops
        // split 5, 5, 6) on 3 ranks, 2 rows each.
        let sourced = common + ["--set", "teacher.source=sine", "--set", "teacher.harmonics=4", "--set", "train.batch_size=6"]
        let alone = try CommandRunner.parawave(sourced + ["--run", dir + "/source1"])
        #expect(alone.status == 0, "\(alone.stderr)")
        let three = try CommandRunner.mpirun(ranks: 3, sourced + ["--run", dir + "/source3"])
        #expect(three.status == 0, "\(three.stdout)\(three.stderr)")
        #expect(try SafeTensors.read(dir + "/source3/model.safetensors").tensors.keys.contains { $0.hasPrefix("teacher.pitch.") })
        _ = try Self.compare(dir + "/source1/train-state.safetensors", dir + "/source3/train-state.safetensors")

        let uneven = try CommandRunner.mpirun(ranks: 2, common + ["--run", dir + "/uneven", "--set", "train.batch_size=3"])
        #expect(uneven.status != 0 && uneven.stderr.contains("train.batch_size (3) does not divide evenly over 2 ranks"), "\(uneven.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/uneven/train-state.safetensors"))
    }

    /// Distillation and WaveGlow on 2 ranks match 1 rank to 1e-5 relative, the discriminator's
    /// weights and moments included.
    @Test func studentAndWaveGlowOnTwoRanksMatchOne() throws {
        let dir = try CLITests().tinyCorpus()
        let teacher = try CommandRunner.parawave(["train-teacher", "--data", dir + "/data", "--recipe", dir + "/r.yaml", "--steps", "4",
                                                  "--run", dir + "/teacher"] + Self.teacher)
        #expect(teacher.status == 0, "\(teacher.stderr)")
        let distill = ["distill", "--data", dir + "/data", "--recipe", dir + "/r.yaml", "--teacher", dir + "/teacher", "--steps", "6"] + Self.student
        let one = try CommandRunner.parawave(distill + ["--run", dir + "/s1"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try CommandRunner.mpirun(ranks: 2, distill + ["--run", dir + "/s2"])
        #expect(two.status == 0, "\(two.stdout)\(two.stderr)")
        let state = try SafeTensors.read(dir + "/s2/train-state.safetensors")
        #expect(state.tensors["discriminator.values"] != nil)
        _ = try Self.compare(dir + "/s1/train-state.safetensors", dir + "/s2/train-state.safetensors")

        let waveglow = ["train-waveglow", "--data", dir + "/data", "--recipe", dir + "/r.yaml", "--set", "waveglow.n_flows=4",
                        "--set", "waveglow.n_group=4", "--set", "waveglow.n_early_every=2", "--set", "waveglow.layers=3",
                        "--set", "waveglow.residual_channels=8", "--set", "waveglow.steps=8", "--set", "waveglow.crop=512",
                        "--set", "waveglow.batch_size=4", "--set", "waveglow.precision=single", "--set", "waveglow.validation_utterances=2",
                        "--set", "waveglow.learning_rate=0.001"]
        let w1 = try CommandRunner.parawave(waveglow + ["--run", dir + "/w1"])
        #expect(w1.status == 0, "\(w1.stderr)")
        let w2 = try CommandRunner.mpirun(ranks: 2, waveglow + ["--run", dir + "/w2"])
        #expect(w2.status == 0, "\(w2.stderr)")
        _ = try Self.compare(dir + "/w1/train-state.safetensors", dir + "/w2/train-state.safetensors")
    }

    /// The ranks of a job started by `started` (mpirun's children running parawave), by rank.
    static func ranks(of started: CommandRunner.Started) -> [Int: Int32] {
        var found: [Int: Int32] = [:]
        let parent = started.process.processIdentifier
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent,
                  let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { continue }
            for variable in environ.split(separator: 0) {
                let text = String(decoding: variable, as: UTF8.self)
                if text.hasPrefix("OMPI_COMM_WORLD_RANK="), let rank = Int(text.dropFirst("OMPI_COMM_WORLD_RANK=".count)) { found[rank] = pid }
            }
        }
        return found
    }

    /// Starts a 2-rank teacher run that would go on for long, and returns once it has written a
    /// checkpoint, with its ranks' process IDs.
    static func startLongRun(_ dir: String, run: String, resume: Bool, environment: [String: String] = [:]) throws
        -> (CommandRunner.Started, [Int: Int32]) {
        var arguments = ["train-teacher", "--data", dir + "/data", "--run", dir + "/" + run, "--steps", "1000000"]
        arguments += resume ? ["--resume"] : ["--recipe", dir + "/r.yaml"] + teacher
        let started = try CommandRunner.start(CommandRunner.mpirunPath,
                                              CommandRunner.mpirunArguments(ranks: 2, environment: environment) + arguments,
                                              environment: environment)
        let state = dir + "/" + run + "/train-state.safetensors"
        let before = (try? FileManager.default.attributesOfItem(atPath: state)[.modificationDate] as? Date) ?? nil
        var ranks: [Int: Int32] = [:]
        for _ in 0..<3000 where started.process.isRunning {
            ranks = Self.ranks(of: started)
            let now = (try? FileManager.default.attributesOfItem(atPath: state)[.modificationDate] as? Date) ?? nil
            if ranks.count == 2 && now != nil && now != before { break }
            usleep(20_000)
        }
        return (started, ranks)
    }

    /// Waits up to a minute for a job to end (a job that hangs is killed and fails the test).
    static func finish(_ started: CommandRunner.Started) -> CommandRunner.Result {
        let deadline = Date().addingTimeInterval(60)
        let watchdog = Thread {
            while started.process.isRunning && Date() < deadline { usleep(100_000) }
            if started.process.isRunning { kill(started.process.processIdentifier, SIGKILL) }
        }
        watchdog.start()
        let result = CommandRunner.collect(started)
        #expect(Date() < deadline, "the job hung after a rank was lost")
        return result
    }

    /// A stop request on one rank (SIGUSR1 to rank 1 alone: what `mpirun` forwards to every
    /// rank) stops the run at one step on all ranks, with rank 0's checkpoint of that step.
    @Test func stopRequestOnOneRankStopsAll() throws {
        let dir = try CLITests().tinyCorpus()
        let (started, ranks) = try Self.startLongRun(dir, run: "run", resume: false)
        try #require(ranks.count == 2, "the job's ranks were not found")
        kill(ranks[1]!, SIGUSR1)
        let ended = Self.finish(started)
        #expect(ended.status == 130, "\(ended.stderr)")
        let said = try #require(ended.stderr.split(separator: "\n").first { $0.hasPrefix("stopped at step ") }, "\(ended.stderr)")
        let step = try #require(Int(said.dropFirst("stopped at step ".count).prefix { $0.isNumber }))
        #expect(try SafeTensors.read(dir + "/run/train-state.safetensors").metadata["step"] == String(step))
        try Self.expectOnlyRunFiles(dir + "/run")
    }

    /// A rank killed with SIGKILL ends the whole job with a message naming it (not a hang), no
    /// file is left partial, and the run resumes from its last checkpoint. The whole job
    /// suspended past the collective timeout goes on when continued; one rank that hangs
    /// (stopped) ends the job after the timeout, with Parawave's message.
    @Test func lostRankEndsTheJobAndTheRunResumes() throws {
        let dir = try CLITests().tinyCorpus()
        let (killed, ranks) = try Self.startLongRun(dir, run: "run", resume: false)
        try #require(ranks.count == 2, "the job's ranks were not found")
        kill(ranks[1]!, SIGKILL)
        let ended = Self.finish(killed)
        #expect(ended.status != 0)
        #expect(ended.stderr.contains("rank 1") && ended.stderr.contains("signal 9"), "\(ended.stderr)")
        try Self.expectOnlyRunFiles(dir + "/run")
        let saved = try SafeTensors.read(dir + "/run/train-state.safetensors")
        let step = try #require(Int(saved.metadata["step"] ?? ""))
        #expect(step >= 5)

        // Resumed (on 2 ranks again), then a hang: rank 1 stopped, the others time out.
        let (hung, resumed) = try Self.startLongRun(dir, run: "run", resume: true, environment: ["PARAWAVE_COLLECTIVE_TIMEOUT": "2"])
        try #require(resumed.count == 2, "the resumed job's ranks were not found")
        // The whole job suspended for longer than the timeout (as a scheduler suspends one)
        // goes on when it continues: only the time a rank ran counts as waiting.
        let state = dir + "/run/train-state.safetensors"
        let modified = { (try? FileManager.default.attributesOfItem(atPath: state)[.modificationDate] as? Date) ?? nil }
        for pid in resumed.values { kill(pid, SIGSTOP) }
        sleep(3)
        let suspended = modified()
        for pid in resumed.values { kill(pid, SIGCONT) }
        for _ in 0..<1500 where hung.process.isRunning && modified() == suspended { usleep(20_000) }
        #expect(hung.process.isRunning && modified() != suspended, "the job did not go on after it was continued")
        kill(resumed[1]!, SIGSTOP)
        let timedOut = Self.finish(hung)
        kill(resumed[1]!, SIGKILL)
        #expect(timedOut.status != 0)
        #expect(timedOut.stderr.contains("rank 0 of 2: the other ranks did not take part in the ") && timedOut.stderr.contains(" for 2 s: one has died or hangs"),
                "\(timedOut.stderr)")
        let later = try SafeTensors.read(dir + "/run/train-state.safetensors")
        #expect(Int(later.metadata["step"] ?? "") ?? 0 > step, "the resumed run went on from step \(step)")
        try Self.expectOnlyRunFiles(dir + "/run")

        let last = try #require(Int(later.metadata["step"] ?? ""))
        let finished = try CommandRunner.parawave(["train-teacher", "--data", dir + "/data", "--run", dir + "/run", "--resume",
                                                   "--steps", String(last + 3)])
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect(try SafeTensors.read(dir + "/run/train-state.safetensors").metadata["step"] == String(last + 3))
    }
}
