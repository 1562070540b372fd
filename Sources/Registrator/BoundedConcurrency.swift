/// Runs `body` for every element, at most `limit` at a time (`MAX_CONCURRENCY`, docs/DECISIONS.md D53), and returns
/// the results in the elements' order. Once the task is cancelled (SIGTERM in `serve`) no more
/// elements start; those not started get `skipped(element)`.
func boundedMap<Element: Sendable, Result: Sendable>(
    _ elements: [Element],
    limit: Int,
    skipped: (Element) -> Result,
    _ body: @escaping @Sendable (Element) async -> Result
) async -> [Result] {
    await withTaskGroup(of: (Int, Result).self) { group in
        var results = [Result?](repeating: nil, count: elements.count)
        var next = 0
        while next < min(max(limit, 1), elements.count) {
            let (index, element) = (next, elements[next])
            group.addTask { (index, await body(element)) }
            next += 1
        }
        while let (index, result) = await group.next() {
            results[index] = result
            if next < elements.count, !Task.isCancelled {
                let (index, element) = (next, elements[next])
                group.addTask { (index, await body(element)) }
                next += 1
            }
        }
        return results.enumerated().map { $0.element ?? skipped(elements[$0.offset]) }
    }
}
