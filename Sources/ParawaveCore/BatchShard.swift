/// One process's part of a data-parallel batch: rows `offset ..< offset + count` of a global
/// batch of `total` rows, and `sum`, which adds vectors elementwise over every process's part
/// (in a fixed order, so every process gets the same sums).
///
/// A loss computed on a part divides by the global batch's counts (samples, frames, rows),
/// which `sum` gives, so that the parts' gradients add up to the global batch's. Statistics
/// that are not sums over rows (a norm over the whole batch) are formed from summed parts.
/// `whole(_:)` is the ordinary case: one process, the whole batch, `sum` the identity.
public struct BatchShard: @unchecked Sendable {
    public let offset: Int
    public let count: Int
    public let total: Int
    public let sum: ([Double]) -> [Double]

    public init(offset: Int, count: Int, total: Int, sum: @escaping ([Double]) -> [Double]) {
        precondition(offset >= 0 && count >= 0 && offset + count <= total, "a shard must lie inside its batch")
        self.offset = offset
        self.count = count
        self.total = total
        self.sum = sum
    }

    /// A whole batch of `batch` rows in one process.
    public static func whole(_ batch: Int) -> BatchShard { BatchShard(offset: 0, count: batch, total: batch, sum: { $0 }) }

    public var isWhole: Bool { count == total }

    /// One value summed over the parts.
    public func sum(_ value: Double) -> Double { sum([value])[0] }

    /// A count over these rows (samples, frames) made the whole batch's; at least 1, as a divisor.
    public func total(_ local: Int) -> Int { max(1, isWhole ? local : Int(sum(Double(local)))) }
}
