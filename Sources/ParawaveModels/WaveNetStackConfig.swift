import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The shape of a WaveNet-like stack (teacher, or one flow of the student).
public struct WaveNetStackConfig: Codable, Equatable, Sendable {
    /// How mel frames become per-sample conditioning.
    public enum Upsampler: String, Codable, CaseIterable, Sendable {
        /// Each frame repeated `hop` times, then a centred convolution of `upsampleKernel` samples.
        case nearest = "repeat"
        /// A transposed convolution of stride `hop` and `upsampleKernel` (= 2 hop) taps.
        case transposed
    }

    public var layers: Int
    /// Dilation of layer l is 2^(l mod cycle).
    public var cycle: Int
    public var kernelSize: Int
    /// R: residual channels.
    public var residualChannels: Int
    /// G: the gate's output channels. The dilated convolution has 2G outputs, which the gate
    /// halves; the recipe's `gate_channels` is that 2G.
    public var gateOutChannels: Int
    /// S: skip channels.
    public var skipChannels: Int
    /// Cc: conditioning channels (mel bands). Not stored in a checkpoint: its model's mel
    /// settings give it (`derive(from:)`).
    public var conditionChannels: Int
    /// Samples per conditioning frame; like `conditionChannels`, the mel settings' hop length.
    public var hop: Int
    /// Kernel of the centred convolution after the nearest-neighbour upsampling, or of the
    /// transposed convolution (in samples).
    public var upsampleKernel: Int = 3
    public var upsampler: Upsampler = .nearest
    /// E: width of the speaker embedding each layer projects into its gate input (0: none).
    public var speakerChannels: Int = 0
    /// Cs: channels of sample-rate source conditioning (the sine excitation) each layer
    /// projects into its gate input (0: none).
    public var sourceChannels: Int = 0

    public init(layers: Int, cycle: Int, kernelSize: Int, residualChannels: Int, gateOutChannels: Int, skipChannels: Int,
                conditionChannels: Int, hop: Int, upsampleKernel: Int? = nil, upsampler: Upsampler = .nearest, speakerChannels: Int = 0,
                sourceChannels: Int = 0) {
        self.layers = layers
        self.cycle = cycle
        self.kernelSize = kernelSize
        self.residualChannels = residualChannels
        self.gateOutChannels = gateOutChannels
        self.skipChannels = skipChannels
        self.conditionChannels = conditionChannels
        self.hop = hop
        self.upsampleKernel = upsampleKernel ?? (upsampler == .transposed ? 2 * hop : 3)
        self.upsampler = upsampler
        self.speakerChannels = speakerChannels
        self.sourceChannels = sourceChannels
    }

    enum CodingKeys: String, CodingKey {
        case layers, cycle, kernelSize, residualChannels, skipChannels, conditionChannels, hop, upsampleKernel
        case speakerChannels, upsampler, sourceChannels
        /// The key checkpoints have always used.
        case gateOutChannels = "gatedChannels"
    }

    /// Decodes a stored config; `speakerChannels`, `sourceChannels` and `upsampler` are absent
    /// from configs that use none of them (and from checkpoints written before they existed).
    /// `conditionChannels` and `hop` are 0 unless the config is an old one that stored them:
    /// the enclosing model config sets them from its mel settings with `derive(from:)`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers)
        cycle = try c.decode(Int.self, forKey: .cycle)
        kernelSize = try c.decode(Int.self, forKey: .kernelSize)
        residualChannels = try c.decode(Int.self, forKey: .residualChannels)
        gateOutChannels = try c.decode(Int.self, forKey: .gateOutChannels)
        skipChannels = try c.decode(Int.self, forKey: .skipChannels)
        conditionChannels = try c.decodeIfPresent(Int.self, forKey: .conditionChannels) ?? 0
        hop = try c.decodeIfPresent(Int.self, forKey: .hop) ?? 0
        upsampleKernel = try c.decode(Int.self, forKey: .upsampleKernel)
        speakerChannels = try c.decodeIfPresent(Int.self, forKey: .speakerChannels) ?? 0
        upsampler = try c.decodeIfPresent(Upsampler.self, forKey: .upsampler) ?? .nearest
        sourceChannels = try c.decodeIfPresent(Int.self, forKey: .sourceChannels) ?? 0
    }

    /// Encodes the config; `speakerChannels`, `sourceChannels` and `upsampler` only when they
    /// differ from the defaults, and never `conditionChannels` or `hop`, which the model's mel
    /// settings hold.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(layers, forKey: .layers)
        try c.encode(cycle, forKey: .cycle)
        try c.encode(kernelSize, forKey: .kernelSize)
        try c.encode(residualChannels, forKey: .residualChannels)
        try c.encode(gateOutChannels, forKey: .gateOutChannels)
        try c.encode(skipChannels, forKey: .skipChannels)
        try c.encode(upsampleKernel, forKey: .upsampleKernel)
        if speakerChannels > 0 { try c.encode(speakerChannels, forKey: .speakerChannels) }
        if upsampler != .nearest { try c.encode(upsampler, forKey: .upsampler) }
        if sourceChannels > 0 { try c.encode(sourceChannels, forKey: .sourceChannels) }
    }

    /// Takes `hop` and `conditionChannels` from the mel settings of the model it belongs to.
    /// A checkpoint written before they were derived stored copies of its own, which must
    /// agree; the disagreement is returned, nil when there is none.
    public mutating func derive(from mel: MelSettings) -> String? {
        for (name, stored, derived, key) in [("hop", hop, mel.hopLength, "hop_length"), ("conditionChannels", conditionChannels, mel.nMels, "n_mels")]
        where stored != 0 && stored != derived {
            return "its stack's \(name) (\(stored)) disagrees with its mel \(key) (\(derived)): the checkpoint contradicts itself; retrain it"
        }
        hop = mel.hopLength
        conditionChannels = mel.nMels
        return nil
    }

    /// The ranges of the shape's values, shared by the recipe's checks and a checkpoint's.
    public enum Limits {
        public static let layers = 1...256
        public static let cycle = 1...20
        public static let kernelSize = 2...16
        /// R, G and S.
        public static let channels = 1...4096
        public static let speakerChannels = 0...1024
        public static let sourceChannels = 0...1
    }

    /// Problems with the shape, each naming the value; empty when it is usable.
    public func problems() -> [String] {
        var out: [String] = []
        for (name, value, range) in [("layers", layers, Limits.layers), ("cycle", cycle, Limits.cycle), ("kernelSize", kernelSize, Limits.kernelSize),
                                     ("residualChannels", residualChannels, Limits.channels), ("gateOutChannels", gateOutChannels, Limits.channels),
                                     ("skipChannels", skipChannels, Limits.channels), ("speakerChannels", speakerChannels, Limits.speakerChannels),
                                     ("sourceChannels", sourceChannels, Limits.sourceChannels), ("conditionChannels", conditionChannels, 1...512),
                                     ("hop", hop, 1...65536)]
        where !range.contains(value) {
            out.append("\(name) \(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        let kernels = upsampler == .transposed ? 1...(4 * max(hop, 1)) : 1...65
        if !kernels.contains(upsampleKernel) { out.append("upsampleKernel \(upsampleKernel) is outside \(kernels.lowerBound)...\(kernels.upperBound)") }
        if upsampler == .nearest && upsampleKernel % 2 == 0 { out.append("upsampleKernel \(upsampleKernel) must be odd (the convolution is centred)") }
        return out
    }

    public func dilation(_ layer: Int) -> Int { 1 << (layer % cycle) }

    /// Samples of the past an output sees: 1 + sum_l (K - 1) d_l.
    public var receptiveField: Int { 1 + (0..<layers).map { (kernelSize - 1) * dilation($0) }.reduce(0, +) }

    /// Samples on either side of a sample whose frames its conditioning can depend on beyond
    /// the frame's own span.
    public var upsampleReach: Int { upsampler == .transposed ? upsampleKernel : (upsampleKernel - 1) / 2 }

    /// Multiply-adds per output sample of the convolutions (the upsampler excluded).
    public var multiplyAddsPerSample: Int {
        let R = residualChannels, G = gateOutChannels, S = skipChannels, C = conditionChannels
        return residualChannels + layers * (kernelSize * 2 * G * R + 2 * G * (C + sourceChannels) + S * G + R * G)
    }

    /// True when c_up is constant over each frame but for the upsampler kernel's reach at its
    /// edges (the nearest upsampler, with hop >= its kernel): the forward-only pass and the
    /// generator then compute the conditioning at `upsampleKernel` positions per frame only.
    public var conditioningAtFrameRate: Bool { upsampler == .nearest && hop >= upsampleKernel }

    /// Of those, the conditioning products W_c c_up, which the forward-only pass computes per
    /// frame rather than per sample when `conditioningAtFrameRate`.
    public var conditioningMultiplyAddsPerSample: Int {
        conditioningAtFrameRate ? layers * 2 * gateOutChannels * conditionChannels : 0
    }
}
