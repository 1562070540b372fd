// libFuzzer target: the start of a streamed answer as `StreamingResponseSplitter` reads it (a JSON
// prelude and 8 NULs, or none). The first byte picks the content type and the piece size. However
// the stream is cut: one head, first; the same head and body; the body is the stream's bytes
// unchanged, either all of them or what follows a prelude within the limit and its 8 NULs.
import FuzzSupport
import LambdaPayload
import NIOCore

let contentTypes: [String?] = [nil, StreamingResponseSplitter.integrationContentType, "text/event-stream", "application/octet-stream"]
let limit = 256

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let contentType = contentTypes[Int(first) % contentTypes.count]
    let piece = Int(first / 4) % 16 + 1
    let stream = Array(bytes.dropFirst())
    let whole = read(stream, pieces: max(stream.count, 1), contentType: contentType)
    let cut = read(stream, pieces: piece, contentType: contentType)
    precondition(whole.head == cut.head && whole.body == cut.body && whole.failed == cut.failed, "pieces of \(piece) read differently")
    guard !whole.failed else { return 0 }
    precondition(whole.head != nil, "no head")
    if whole.body != stream {
        precondition(stream.count >= whole.body.count + 8 && stream.suffix(whole.body.count) == whole.body[...], "the body is not the stream's end")
        let preludeLength = stream.count - whole.body.count - 8
        precondition(preludeLength <= limit && stream[preludeLength..<(preludeLength + 8)].allSatisfy { $0 == 0 }, "a prelude over the limit or without its NULs")
    }
    return 0
}

func read(_ stream: [UInt8], pieces: Int, contentType: String?) -> (head: LambdaHTTPResponse?, body: [UInt8], failed: Bool) {
    var splitter = StreamingResponseSplitter(contentType: contentType, maximumPreludeBytes: limit)
    var head: LambdaHTTPResponse?
    var body: [UInt8] = []
    func take(_ events: [StreamingResponseSplitter.Event]) {
        for event in events {
            switch event {
            case .head(let response):
                precondition(head == nil && body.isEmpty, "a second head, or a head after the body")
                head = response
            case .body(let piece):
                precondition(head != nil, "body before the head")
                body += piece.readableBytesView
            }
        }
    }
    do {
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + pieces)
            take(try splitter.append(ByteBuffer(bytes: stream[start..<end])))
            start = end
        }
        take(try splitter.finish())
        return (head, body, false)
    } catch {
        return (nil, [], true)
    }
}

@_cdecl("FuzzStreamingPrelude_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
