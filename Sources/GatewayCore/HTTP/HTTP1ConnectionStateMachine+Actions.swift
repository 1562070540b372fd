extension HTTP1ConnectionStateMachine {
    /// The actions of one event, in order. An event has at most three on the request path, kept
    /// inline: events come several times per request (every read asks for the next one), and an
    /// array literal returned from each cost a heap allocation.
    struct Actions: Sequence, ExpressibleByArrayLiteral {
        private var first: Action?
        private var second: Action?
        private var third: Action?
        /// Beyond three (none of today's events).
        private var more: [Action] = []

        init() {}

        init(arrayLiteral actions: Action...) {
            for action in actions { append(action) }
        }

        init(_ action: Action) {
            first = action
        }

        var isEmpty: Bool { first == nil }

        mutating func append(_ action: Action) {
            if first == nil {
                first = action
            } else if second == nil {
                second = action
            } else if third == nil {
                third = action
            } else {
                more.append(action)
            }
        }

        mutating func append(contentsOf actions: Actions) {
            for action in actions { append(action) }
        }

        /// Each action in order, without copying the whole list first (as an iterator would).
        func forEach(_ body: (Action) throws -> Void) rethrows {
            guard let first else { return }
            try body(first)
            guard let second else { return }
            try body(second)
            guard let third else { return }
            try body(third)
            for action in more { try body(action) }
        }

        struct Iterator: IteratorProtocol {
            fileprivate let actions: Actions
            fileprivate var position = 0

            mutating func next() -> Action? {
                defer { position += 1 }
                switch position {
                case 0: return actions.first
                case 1: return actions.second
                case 2: return actions.third
                default: return position - 3 < actions.more.count ? actions.more[position - 3] : nil
                }
            }
        }

        func makeIterator() -> Iterator {
            Iterator(actions: self)
        }
    }
}
