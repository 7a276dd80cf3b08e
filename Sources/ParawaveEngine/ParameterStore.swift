import ParawaveCore

/// All of a model's parameters in one Float32 allocation, with a table of named, shaped views.
///
/// Gradients, Adam moments and the EMA copy are separate buffers with the same layout, so
/// the optimizer is one flat loop and a checkpoint is the table plus the buffers.
public final class ParameterStore: @unchecked Sendable {
    /// A named tensor inside the flat buffer.
    public struct Entry: Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]
    /// The values, (count).
    public private(set) var values: UnsafeMutablePointer<Float>
    /// The gradients, same layout; backward passes add into them.
    public private(set) var gradients: UnsafeMutablePointer<Float>
    public private(set) var count = 0
    private var capacity = 0

    public init() {
        values = .allocate(capacity: 1)
        gradients = .allocate(capacity: 1)
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
    }

    /// Adds a zero-filled tensor and returns its entry; names must be unique.
    @discardableResult
    public func add(_ name: String, shape: [Int]) -> Entry {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        precondition(!shape.isEmpty && shape.allSatisfy { $0 > 0 }, "invalid shape for \(name)")
        let entry = Entry(name: name, shape: shape, offset: count)
        let size = shape.reduce(1, *)
        reserve(count + size)
        (values + count).initialize(repeating: 0, count: size)
        (gradients + count).initialize(repeating: 0, count: size)
        index[name] = entries.count
        entries.append(Entry(name: name, shape: shape, offset: entry.offset))
        count += size
        return entries[entries.count - 1]
    }

    private func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = max(needed, capacity * 2, 1024)
        for buffer in [\ParameterStore.values, \ParameterStore.gradients] {
            let fresh = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity)
            fresh.initialize(from: self[keyPath: buffer], count: count)
            self[keyPath: buffer].deallocate()
            self[keyPath: buffer] = fresh
        }
        capacity = newCapacity
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Pointer to a tensor's values.
    public func value(_ entry: Entry) -> UnsafeMutablePointer<Float> { values + entry.offset }

    /// Pointer to a tensor's gradient.
    public func gradient(_ entry: Entry) -> UnsafeMutablePointer<Float> { gradients + entry.offset }

    public func zeroGradients() { gradients.update(repeating: 0, count: count) }

    /// The values as an array (for checkpoints and tests).
    public var valueArray: [Float] { Array(UnsafeBufferPointer(start: values, count: count)) }

    /// The gradients as an array.
    public var gradientArray: [Float] { Array(UnsafeBufferPointer(start: gradients, count: count)) }

    /// Replaces all values; the count must match.
    public func setValues(_ new: [Float]) {
        precondition(new.count == count, "parameter count mismatch")
        new.withUnsafeBufferPointer { values.update(from: $0.baseAddress!, count: count) }
    }

    /// Fills `entry` with uniform values in [-bound, bound] from `generator`.
    public func initUniform(_ entry: Entry, bound: Float, generator: inout SeededGenerator) {
        let p = value(entry)
        for i in 0..<entry.count { p[i] = (2 * generator.uniformOpen() - 1) * bound }
    }

    /// Fills `entry` with a constant.
    public func fill(_ entry: Entry, _ constant: Float) { value(entry).update(repeating: constant, count: entry.count) }

    /// True when every gradient is finite.
    public var gradientsAreFinite: Bool {
        for i in 0..<count where !gradients[i].isFinite { return false }
        return true
    }

    /// The L2 norm of all gradients, accumulated in Float64.
    public var gradientNorm: Double {
        var sum = 0.0
        for i in 0..<count { sum += Double(gradients[i]) * Double(gradients[i]) }
        return sum.squareRoot()
    }
}
