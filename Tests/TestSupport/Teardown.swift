/// Runs `body`, then `teardown`, whether `body` threw or not (`defer` cannot `await`).
public func withTeardown<T>(_ body: () async throws -> T, teardown: () async -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await teardown()
        throw error
    }
    await teardown()
    return result
}
