import Foundation
import Testing

@testable import GatewayCore

/// The `x-request-id` values the gateway adds: UUID v4 in form, never repeated within a process,
/// and different between processes.
@Suite("request IDs")
struct RequestIDGeneratorTests {
    @Test func idsAreVersion4UUIDs() throws {
        let generator = RequestIDGenerator()
        for _ in 0..<1000 {
            let id = generator.next()
            let parsed = try #require(UUID(uuidString: id), "\(id) is not a UUID")
            #expect(parsed.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "version nibble of \(id)")
            #expect(bytes[8] >> 6 == 0b10, "variant bits of \(id)")
        }
    }

    @Test func idsDoNotRepeat() {
        // A seed of zeros puts the counter's structure in plain view: the mixing still spreads it.
        let generator = RequestIDGenerator(seed: (0, 0))
        var seen = Set<String>()
        for _ in 0..<200_000 { seen.insert(generator.next()) }
        #expect(seen.count == 200_000)
        let first = RequestIDGenerator(seed: (0, 0)).next()
        #expect(first != "00000000-0000-4000-8000-000000000000")
    }

    @Test func generatorsWithRandomSeedsDiffer() {
        let one = RequestIDGenerator()
        let two = RequestIDGenerator()
        #expect(one.next() != two.next())
    }

    @Test func formatIsFixedWidthLowercaseHex() {
        #expect(RequestIDGenerator.format(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210) == "01234567-89ab-cdef-fedc-ba9876543210")
        #expect(RequestIDGenerator.format(0, 0) == "00000000-0000-0000-0000-000000000000")
    }
}
