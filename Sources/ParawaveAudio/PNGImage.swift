import CPNG
import Foundation
import ParawaveCore

/// An 8-bit RGB image written as PNG through libpng's simplified API.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    /// (height, width, 3), row-major, top row first.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        precondition(width > 0 && height > 0, "image must not be empty")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = fill.0
            pixels[3 * i + 1] = fill.1
            pixels[3 * i + 2] = fill.2
        }
    }

    @inline(__always)
    public mutating func set(_ x: Int, _ y: Int, _ color: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        pixels[i] = color.0
        pixels[i + 1] = color.1
        pixels[i + 2] = color.2
    }

    /// Fills the rectangle [x, x + w) x [y, y + h), clipped to the image.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: (UInt8, UInt8, UInt8)) {
        for yy in max(0, y)..<min(height, y + h) { for xx in max(0, x)..<min(width, x + w) { set(xx, yy, color) } }
    }

    /// Writes the image to `path` as PNG, atomically.
    public func writePNG(to path: String) throws {
        try AtomicFile.write(to: path) { temporary in
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(width)
            image.height = UInt32(height)
            image.format = UInt32(PNG_FORMAT_RGB)
            let ok = pixels.withUnsafeBufferPointer { buffer in
                png_image_write_to_file(&image, temporary, 0, buffer.baseAddress, Int32(width * 3), nil)
            }
            if ok == 0 {
                let message = withUnsafeBytes(of: image.message) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                png_image_free(&image)
                throw ParawaveError(path, "cannot write PNG: \(message) (libpng)")
            }
        }
    }

    /// Reads a PNG file as RGB (for tests and tools).
    public static func readPNG(_ path: String) throws -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw ParawaveError(path, "cannot read PNG (libpng)")
        }
        image.format = UInt32(PNG_FORMAT_RGB)
        var out = RGBImage(width: Int(image.width), height: Int(image.height))
        let ok = out.pixels.withUnsafeMutableBufferPointer { buffer in
            png_image_finish_read(&image, nil, buffer.baseAddress, Int32(out.width * 3), nil)
        }
        guard ok != 0 else { throw ParawaveError(path, "cannot decode PNG (libpng)") }
        return out
    }
}
