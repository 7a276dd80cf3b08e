import ParawaveCore
import ParawaveEngine

/// The output head on a stack's skip sum: `relu -> 1x1 (S -> S) -> relu -> 1x1 (S -> P)`.
/// The teacher's gives the mixture parameters (P = 3M); a student flow's gives (mu, log s)
/// (P = 2). Parameters are `prefix.0.{weight,bias}` and `prefix.1.{weight,bias}`.
public struct WaveNetHead: Sendable {
    public let inputChannels: Int, outputChannels: Int
    let first: Conv1d, second: Conv1d
    let firstWeight: ParameterStore.Entry, firstBias: ParameterStore.Entry
    let secondWeight: ParameterStore.Entry, secondBias: ParameterStore.Entry

    public init(prefix: String, inputChannels S: Int, outputChannels P: Int, store: ParameterStore) {
        inputChannels = S
        outputChannels = P
        // The outputs (a student's mu and log s, a teacher's mixture) stay float32 in bfloat16 runs.
        var first = Conv1d(inputChannels: S, outputChannels: S), second = Conv1d(inputChannels: S, outputChannels: P)
        first.keepsFloat32 = true
        second.keepsFloat32 = true
        self.first = first
        self.second = second
        firstWeight = store.add("\(prefix).0.weight", shape: [1, S, S])
        firstBias = store.add("\(prefix).0.bias", shape: [S])
        secondWeight = store.add("\(prefix).1.weight", shape: [1, P, S])
        secondBias = store.add("\(prefix).1.bias", shape: [P])
    }

    /// PyTorch's default uniform bound 1/sqrt(S) for every entry, the last layer's weights
    /// further multiplied by `outputScale`.
    public func initialise(_ store: ParameterStore, generator: inout SeededGenerator, outputScale: Float = 1) {
        let bound = 1 / Float(inputChannels).squareRoot()
        store.initUniform(firstWeight, bound: bound, generator: &generator)
        store.initUniform(firstBias, bound: bound, generator: &generator)
        store.initUniform(secondWeight, bound: bound * outputScale, generator: &generator)
        store.initUniform(secondBias, bound: bound, generator: &generator)
    }

    /// Scales the last layer's weights of the outputs in `outputs` by `factor` and sets their
    /// biases, so they start near `biases` whatever the input.
    func restartOutputs(_ outputs: Range<Int>, factor: Float, biases: [Float], store: ParameterStore) {
        precondition(biases.count == outputs.count, "one bias per output")
        let w = store.value(secondWeight) + outputs.lowerBound * inputChannels
        for i in 0..<(outputs.count * inputChannels) { w[i] *= factor }
        (store.value(secondBias) + outputs.lowerBound).update(from: biases, count: biases.count)
    }

    /// The last layer's bias, (P).
    func outputBias(_ store: ParameterStore) -> UnsafeMutablePointer<Float> { store.value(secondBias) }

    /// relu(skip), hidden = first(relu(skip)), relu(hidden), each (B, S, T), and gradient scratch.
    public final class Activations: @unchecked Sendable {
        var relu1: [Float], hidden: [Float], relu2: [Float]
        var dRelu: [Float], dHidden: [Float]

        init(count: Int, training: Bool) {
            relu1 = [Float](repeating: 0, count: count)
            hidden = relu1
            relu2 = relu1
            dRelu = training ? relu1 : []
            dHidden = dRelu
        }
    }

    public func makeActivations(batch: Int, length: Int, training: Bool = true) -> Activations {
        Activations(count: batch * inputChannels * length, training: training)
    }

    /// out (B, P, T) from the skip sum (B, S, T).
    public func forward(_ a: Activations, skip: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, store: ParameterStore,
                        batch B: Int, length T: Int) {
        let n = B * inputChannels * T
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        a.relu1.withUnsafeMutableBufferPointer { ReLU.forward(out: $0.baseAddress!, inp: skip, count: n) }
        first.forward(out: &a.hidden, inp: a.relu1, weight: w(firstWeight), bias: w(firstBias), batch: B, length: T)
        a.hidden.withUnsafeBufferPointer { h in
            a.relu2.withUnsafeMutableBufferPointer { ReLU.forward(out: $0.baseAddress!, inp: h.baseAddress!, count: n) }
        }
        second.forward(out: out, inp: a.relu2, weight: w(secondWeight), bias: w(secondBias), batch: B, length: T)
    }

    /// From dOut (B, P, T) to dSkip (B, S, T) (overwritten); the head's parameter gradients are
    /// added into the store when `weights`.
    public func backward(_ a: Activations, dOut: UnsafePointer<Float>, skip: UnsafePointer<Float>, dSkip: UnsafeMutablePointer<Float>,
                         store: ParameterStore, batch B: Int, length T: Int, weights: Bool = true) {
        let n = B * inputChannels * T
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        let g = { (e: ParameterStore.Entry) in weights ? store.gradient(e) : nil }
        a.dRelu.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        second.backward(dInp: &a.dRelu, dWeight: g(secondWeight), dBias: g(secondBias), dOut: dOut, inp: a.relu2,
                        weight: w(secondWeight), batch: B, length: T)
        a.dHidden.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        a.hidden.withUnsafeBufferPointer { h in
            a.dRelu.withUnsafeBufferPointer { dr in
                a.dHidden.withUnsafeMutableBufferPointer { ReLU.backward(dInp: $0.baseAddress!, dOut: dr.baseAddress!, inp: h.baseAddress!, count: n) }
            }
        }
        a.dRelu.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        first.backward(dInp: &a.dRelu, dWeight: g(firstWeight), dBias: g(firstBias), dOut: a.dHidden, inp: a.relu1,
                       weight: w(firstWeight), batch: B, length: T)
        dSkip.update(repeating: 0, count: n)
        a.dRelu.withUnsafeBufferPointer { dr in ReLU.backward(dInp: dSkip, dOut: dr.baseAddress!, inp: skip, count: n) }
    }
}
