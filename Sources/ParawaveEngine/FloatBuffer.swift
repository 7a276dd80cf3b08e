/// A zero-filled Float32 buffer of fixed size owned by a class, so that kernels take its
/// pointer directly, without a closure per buffer (a layer's pass touches a dozen of them).
public final class FloatBuffer: @unchecked Sendable {
    /// The values, (count); valid for the buffer's lifetime.
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// `count` zeros (count may be 0).
    public init(_ count: Int) {
        precondition(count >= 0, "negative buffer size")
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    /// Sets every value to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// A copy of the values.
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}
