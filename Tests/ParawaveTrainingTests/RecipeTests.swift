import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveModels
import ParawaveTestSupport
import ParawaveTraining
import Testing

/// Recipes: typed sections, defaults, strict keys, overrides and clear errors.
struct RecipeTests {
    func message(_ yaml: String, overrides: [String] = []) -> String {
        do { _ = try Recipe.parse(yaml, name: "r.yaml", overrides: overrides); return "" } catch { return "\(error)" }
    }

    @Test func demoRecipeLoadsWithDesignValues() throws {
        let recipe = try Recipe.load(Fixtures.root.appendingPathComponent("recipes/demo/recipe.yaml").path)
        #expect(recipe.audio.sampleRate == 16000 && recipe.audio.hopLength == 256 && recipe.audio.nMels == 80)
        #expect(recipe.audio.mel == ParawaveAudioDefaults.mel)
        #expect(recipe.data.sources.count == 2 && !recipe.data.sources.contains { $0.contains("pocketsphinx") }, "the check corpus is held out")
        #expect(recipe.teacher.layers == 16 && recipe.teacher.stack.gateChannels == 64 && recipe.teacher.mixtures == 10)
        #expect(recipe.teacher.sineSource == SineSource(harmonics: 8, amplitude: .inverse, trainingPhase: .aligned))
        // The quality ladder's winners (QUALITY.md): linear prediction from the mel under the
        // teacher, the student's noise centred on the source.
        #expect(recipe.teacher.linearPrediction == 24 && recipe.teacher.logScaleMin == -16)
        #expect(recipe.student.sourceGain == 2 && recipe.distill.initialScale == 1)
        #expect(recipe.train.schedule == .cosine && recipe.train.warmupSteps == 50)
        #expect(recipe.student.flows == [6, 6, 6, 6] && recipe.student.stack.residualChannels == 32)
        #expect(recipe.distill.spectralLoss.kind == .multiResolution && recipe.distill.spectralLoss.weight == 2 && recipe.distill.mcSamples == 16 && recipe.distill.steps == 600)
        #expect(recipe.distill.run.schedule == .cosine && recipe.distill.run.batchSize == 2)
    }

    /// Every shipped recipe loads and validates; demo-long, ljspeech and vctk use T-small;
    /// vctk names speakers by folder.
    /// recipes/overfit trains a source-conditioned teacher and student on one utterance.
    @Test func overfitRecipeLoads() throws {
        let recipe = try Recipe.load(Fixtures.root.appendingPathComponent("recipes/overfit/recipe.yaml").path)
        #expect(recipe.teacher.sineSource == SineSource(harmonics: 8, amplitude: .inverse, trainingPhase: .aligned))
        #expect(recipe.teacherConfig.stack.sourceChannels == 1 && recipe.data.validationFraction == 0)
        #expect(recipe.pitch.settings(audio: recipe.audio).problems().isEmpty)
        // A misspelt source kind and a student source that is not a kind are errors naming the key.
        #expect(throws: ParawaveError.self) { try Recipe.parse("teacher: {source: sin}") }
        #expect(throws: ParawaveError.self) { try Recipe.parse("student: {source: 3}") }
        #expect(try Recipe.parse("student: {source: sine}").student.source == .sine)
        #expect(try Recipe.parse("").student.source == nil)
        // A source-conditioned teacher trains a pitch predictor over the pitch range, unless
        // pitch.predictor_layers is 0; a teacher without a source trains none.
        let predictor = try #require(recipe.teacherConfig.pitch)
        #expect(predictor == PitchPredictorConfig(melChannels: 80, layers: 4, channels: 64, kernelSize: 5, fMin: 50, fMax: 550))
        #expect(try Recipe.parse("teacher: {source: sine}\npitch: {predictor_layers: 0}").teacherConfig.pitch == nil)
        #expect(try Recipe.parse("teacher: {source: none}").teacherConfig.pitch == nil)
        #expect(try Recipe.parse("teacher: {source: sine}\npitch: {predictor_layers: 2, predictor_channels: 16, fmin: 70}")
                .teacherConfig.pitch == PitchPredictorConfig(melChannels: 80, layers: 2, channels: 16, kernelSize: 5, fMin: 70, fMax: 550))
    }

    @Test(arguments: ["demo", "demo-long", "ljspeech", "vctk"])
    func shippedRecipesLoad(name: String) throws {
        let recipe = try Recipe.load(Fixtures.root.appendingPathComponent("recipes/\(name)/recipe.yaml").path)
        #expect(recipe.teacherConfig.stack.receptiveField > 500)
        if name != "demo" {
            #expect(recipe.teacher.layers == 24 && recipe.teacher.stack.residualChannels == 64 && recipe.teacher.stack.gateChannels == 128)
        }
        if name == "ljspeech" || name == "vctk" { #expect(recipe.audio.sampleRate == 22050 && recipe.audio.fMax == 8000) }
        if name == "vctk" {
            let pattern = try #require(try recipe.data.speakerExpression())
            #expect(DataSection.speaker(in: "/data/VCTK-Corpus/wav48/p225/p225_001.wav", expression: pattern) == "p225")
            #expect(DataSection.speaker(in: "/data/VCTK-Corpus-0.92/wav48_silence_trimmed/s5/s5_001_mic1.flac", expression: pattern) == "s5")
            #expect(recipe.teacher.stack.speakerChannels == 16 && recipe.student.stack.speakerChannels == 16)
        }
    }

    @Test func trainingKeysAreChecked() {
        #expect(message("train: {schedule: cosin}").contains("train.schedule"))
        #expect(message("train: {log_every: 0}").contains("train.log_every"))
        #expect(message("train: {max_skiped_steps: 3}").contains("did you mean 'max_skipped_steps'"))
        let cosine = try? Recipe.parse("train: {schedule: cosine, warmup_steps: 10, steps: 110, lr_floor: 0.1, learning_rate: 1}")
        #expect(cosine?.train.learningRateSchedule.rate(base: 1, step: 5) == 0.5)
        #expect(abs((cosine?.train.learningRateSchedule.rate(base: 1, step: 110) ?? 0) - 0.1) < 1e-12)
    }

    /// The distill section takes train's keys with its own defaults, is strict about both, and
    /// writes back as one flat mapping.
    @Test func distillKeysAreChecked() throws {
        #expect(message("distill: {mc_sample: 3}").contains("did you mean 'mc_samples'"))
        #expect(message("distill: {schedule: cosin}").contains("distill.schedule"))
        #expect(message("distill: {contrastive_weight: 0.3, batch_size: 1}").contains("distill.contrastive_weight"))
        #expect(message("distill: {kl_weight: 0, spectral_loss: {kind: none}}").contains("distill.kl_weight"))
        #expect(message("distill: {kl_weight: -1}").contains("distill.kl_weight"))
        #expect(try Recipe.parse("distill: {kl_weight: 0.05}").distill.klWeight == 0.05)
        #expect(message("teacher: {linear_prediction: 600}").contains("teacher.linear_prediction"))
        #expect(message("audio: {n_fft: 32, win_length: 32, hop_length: 8}\nteacher: {linear_prediction: 16}").contains("below n_fft / 2"))
        // LPCNet's noise injection needs the prediction whose error sets its scale.
        #expect(message("teacher: {linear_prediction: 0, history_noise: 0.5}").contains("needs linear_prediction"))
        #expect(message("teacher: {linear_prediction: 16, history_noise: 5}").contains("teacher.history_noise"))
        #expect(message("teacher: {linear_prediction: 16, history_nois: 0.5}").contains("did you mean 'history_noise'"))
        let noisy = try Recipe.parse("teacher: {linear_prediction: 16, history_noise: 0.5}")
        let reparsedNoisy = try Recipe.parse(try noisy.yaml())
        #expect(noisy.teacher.historyNoise == 0.5 && reparsedNoisy.teacher.historyNoise == 0.5)
        // The Gaussian output: one component, refused beside mixtures; an unknown output names the key.
        let gaussian = try Recipe.parse("teacher: {output: gaussian}\ndistill: {log_scale_penalty: 2}")
        #expect(gaussian.teacher.mixtures == 1 && gaussian.teacherConfig.output == .gaussian && gaussian.teacherConfig.outputChannels == 2)
        #expect(gaussian.distill.logScalePenalty == 2)
        let reparsed = try Recipe.parse(try gaussian.yaml())
        #expect(reparsed == gaussian)
        #expect(try Recipe.parse("").teacherConfig.output == .logistic && Recipe().distill.logScalePenalty == 4)
        #expect(message("teacher: {output: gaussian, mixtures: 3}").contains("teacher.mixtures"))
        #expect(message("teacher: {output: cauchy}").contains("teacher.output"))
        #expect(message("teacher: {outpt: gaussian}").contains("did you mean 'output'"))
        #expect(message("distill: {log_scale_penalty: 200}").contains("distill.log_scale_penalty"))
        let recipe = try Recipe.parse("distill: {steps: 7, ema_decay: 0.99, mc_samples: 4, spectral_loss: {kind: multi_resolution}}")
        #expect(recipe.distill.steps == 7 && recipe.distill.run.emaDecay == 0.99 && recipe.distill.run.crop == 8000)
        #expect(recipe.distill.mcSamples == 4 && recipe.spectralLoss?.kind == .multiResolution)
        let again = try Recipe.parse(try recipe.yaml())
        #expect(again == recipe)
    }

    @Test func emptyRecipeTakesDefaults() throws {
        #expect(try Recipe.parse("") == Recipe())
        // The quality ladder's winners are the code's defaults (QUALITY.md): linear prediction
        // of order 24 and a sine source under the teacher (and WaveGlow), the student's noise
        // centred on the source from g = 2 at the excitation's scale, the KL at 0.05 against
        // the multi-resolution STFT loss at 2.
        let empty = try Recipe.parse("")
        #expect(empty.teacher.linearPrediction == 24 && empty.teacher.logScaleMin == -16 && empty.teacher.source == .sine)
        #expect(empty.teacherConfig.pitch != nil && empty.teacherConfig.stack.sourceChannels == 1)
        #expect(empty.student.sourceGain(teacherHasSource: true) == 2 && empty.student.sourceGain(teacherHasSource: false) == 0)
        #expect(empty.distill.initialScale(teacherLinearPrediction: true) == 1 && empty.distill.initialScale(teacherLinearPrediction: false) == 0.05)
        #expect(empty.distill.klWeight == 0.05)
        #expect(empty.distill.spectralLoss.kind == .multiResolution && empty.distill.spectralLoss.weight == 2)
        #expect(empty.waveglow.linearPrediction == 24 && empty.waveglow.source == .sine && empty.waveglow.sourceGain == 2)
        // Defaults that follow another key: the log-scale clamp follows linear prediction
        // (DESIGN.md's -7 without it), WaveGlow's source gain its source; given, they hold.
        #expect(try Recipe.parse("teacher: {linear_prediction: 0}").teacher.logScaleMin == -7)
        #expect(try Recipe.parse("teacher: {linear_prediction: 0, log_scale_min: -9}").teacher.logScaleMin == -9)
        #expect(try Recipe.parse("", overrides: ["teacher.linear_prediction=0"]).teacher.logScaleMin == -7)
        #expect(try Recipe.parse("waveglow: {source: none}").waveglow.sourceGain == 0)
        #expect(try Recipe.parse("student: {source_gain: 1}\ndistill: {initial_scale: 0.3}").student.sourceGain(teacherHasSource: true) == 1)
        #expect(try Recipe.parse("distill: {initial_scale: 0.3}").distill.initialScale(teacherLinearPrediction: true) == 0.3)
        #expect(message("student: {source_gain: -1}").contains("student.source_gain"))
        #expect(message("distill: {initial_scale: 0}").contains("distill.initial_scale"))
        #expect(try Recipe.parse("# only a comment\n") == Recipe())
        let partial = try Recipe.parse("audio: {sample_rate: 22050}")
        #expect(partial.audio.fMax == 11025, "fmax defaults to Nyquist of the given rate")
        #expect(partial.audio.winLength == 1024)
    }

    @Test func misspeltKeyNamesFileKeyAndSuggestion() {
        let text = message("audio:\n  hop_lenght: 200\n")
        #expect(text.hasPrefix("r.yaml: audio.hop_lenght: unknown key"))
        #expect(text.contains("did you mean 'hop_length'?"))
        #expect(message("trian: {steps: 3}").contains("trian: unknown key (did you mean 'train'?)"))
        #expect(message("distill: {spectral_loss: {kind: power, wieght: 2}}").contains("distill.spectral_loss.wieght: unknown key"))
    }

    @Test func wrongTypeAndRangeNameTheKey() {
        #expect(message("train: {steps: many}").contains("train.steps: expected an integer"))
        #expect(message("data: {trim_silence: maybe}").contains("data.trim_silence: expected true or false"))
        #expect(message("audio: {hop_length: 0}").contains("audio.hop_length"))
        #expect(message("audio: {fmax: 9000}").contains("audio.fmax"))
        #expect(message("teacher: {gate_channels: 127}").contains("teacher.gate_channels: must be even"))
        #expect(message("student: {flows: [10, 0]}").contains("student.flows"))
        #expect(message("distill: {spectral_loss: {kind: loud}}").contains("distill.spectral_loss.kind"))
        #expect(message("audio: [1, 2]").contains("audio"))
        #expect(message("audio: {sample_rate: 16000\n").contains("invalid YAML"))
        #expect(message("- a\n- b\n").contains("mapping of sections"))
        #expect(message("data: {speaker_pattern: 'wav48/(p[0-9]+'}").contains("data.speaker_pattern: 'wav48/(p[0-9]+' is not a valid regular expression"))
        #expect(message("teacher: {speaker_channels: -1}").contains("teacher.speaker_channels"))
        #expect(message("student: {upsampler: transpose}").contains("student.upsampler"))
        #expect(message("pitch: {predictor_kernel_size: 4}").contains("pitch.predictor_kernel_size: must be odd"))
        #expect(message("pitch: {predictor_layers: 13}").contains("pitch.predictor_layers"))
        #expect(message("pitch: {predictor_channels: 0}").contains("pitch.predictor_channels"))
        #expect(message("pitch: {predictor_layer: 3}").contains("predictor_layers"))
    }

    /// data.speaker_pattern names a speaker by its first capture group, or the whole match.
    @Test func speakerPatternFindsTheSpeaker() throws {
        let vctk = try #require(try Recipe.parse("data: {speaker_pattern: 'wav48/([^/]+)/'}").data.speakerExpression())
        #expect(DataSection.speaker(in: "/corpora/VCTK/wav48/p225/p225_001.wav", expression: vctk) == "p225")
        #expect(DataSection.speaker(in: "/corpora/other/x.wav", expression: vctk) == nil)
        let whole = try #require(try Recipe.parse("data: {speaker_pattern: 'spk[0-9]+'}").data.speakerExpression())
        #expect(DataSection.speaker(in: "/c/spk12_utt3.wav", expression: whole) == "spk12")
        #expect(try Recipe().data.speakerExpression() == nil)
    }

    @Test func overridesSetAnyKeyAndAreChecked() throws {
        let recipe = try Recipe.parse("train: {steps: 5}", overrides: ["train.steps=7", "teacher.layers=3", "distill.spectral_loss.kind=magnitude",
                                                                     "teacher.upsampler=transposed"])
        #expect(recipe.train.steps == 7 && recipe.teacher.layers == 3 && recipe.distill.spectralLoss.kind == .magnitude)
        #expect(recipe.teacherConfig.stack.upsampler == .transposed && recipe.teacherConfig.stack.upsampleKernel == 2 * recipe.audio.hopLength)
        #expect(recipe.studentConfig(mel: recipe.audio.mel).flows[0].upsampler == .nearest)
        #expect(message("", overrides: ["train.stpes=1"]).contains("train.stpes: unknown key"))
        #expect(message("", overrides: ["steps"]).contains("expected section.key=value"))
        #expect(message("", overrides: ["train.steps=-1"]).contains("train.steps"))
        // Bands without an FFT bin are an error; a crop shorter than a receptive field a warning.
        #expect(message("audio: {n_mels: 512}").contains("without an FFT bin"))
        #expect(try Recipe.parse("audio: {n_mels: 256}").audio.nMels == 256)
        let short = try Recipe.parse("train: {crop: 400}\ndistill: {crop: 3000}")
        #expect(short.warnings.count == 2 && short.warnings[0].hasPrefix("train.crop (400 samples)") && short.warnings[1].hasPrefix("distill.crop"))
        #expect(try Recipe.load(Fixtures.root.appendingPathComponent("recipes/demo/recipe.yaml").path).warnings.isEmpty)
        // An empty key part is an error, not dropped; a bad value names the override, not the file.
        #expect(message("", overrides: ["teacher..layers=2"]).contains("expected section.key=value"))
        #expect(message("", overrides: ["train.steps=-1"]).hasPrefix("--set train.steps=-1: train.steps"), "\(message("", overrides: ["train.steps=-1"]))")
        #expect(message("", overrides: ["train.steps=abc"]).hasPrefix("--set train.steps=abc"))
        #expect(message("", overrides: ["train.stpes=1"]).hasPrefix("--set train.stpes=1"))
        #expect(message("train: {steps: -1}", overrides: ["train.seed=2"]).hasPrefix("r.yaml: train.steps"))
    }

    @Test func resolvedYamlRoundTrips() throws {
        var recipe = Recipe()
        recipe.train.steps = 123
        recipe.data.sources = ["/a", "/b"]
        recipe.distill.spectralLoss.kind = .multiResolution
        let text = try recipe.yaml()
        #expect(text.contains("hop_length: 256") && text.contains("multi_resolution"))
        #expect(try Recipe.parse(text) == recipe)
        // Numbers in decimal notation, as people write them; tiny ones keep an exponent.
        for line in ["ema_decay: 0.9999", "clip_norm: 10.0", "fmax: 8000.0", "learning_rate: 0.001", "- /a"] {
            #expect(text.contains(line), "\(line)")
        }
        #expect(!text.contains("e+") && !text.contains("e-1"), "\(text)")
        recipe.distill.run.learningRate = 3e-5
        #expect(try Recipe.parse(try recipe.yaml()) == recipe)
    }

    @Test func missingFileIsClear() {
        #expect(throws: ParawaveError("/nonexistent/r.yaml", "no such recipe file")) { try Recipe.load("/nonexistent/r.yaml") }
    }
}


enum ParawaveAudioDefaults {
    static let mel = MelSettings()
}
