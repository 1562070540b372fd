// libFuzzer target: an InvokeWithResponseStream body as AWS's event-stream framing, in pieces. The
// decoder either hands out whole, checked messages or stops with an error for good; the pieces
// the input is cut into never change what it reads.
import FuzzSupport
import LambdaPayload
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    // The first byte picks the piece size; the rest is the stream.
    let stream = Array(bytes.dropFirst())
    let piece = Int(first % 32) + 1
    let whole = read(stream, pieces: max(stream.count, 1))
    let cut = read(stream, pieces: piece)
    precondition(whole.messages == cut.messages && whole.error == cut.error, "pieces of \(piece) read differently")
    for message in whole.messages {
        // Within the limit: prelude, headers, payload and checksum.
        let headerBytes = message.headers.reduce(0) { $0 + 2 + $1.name.utf8.count }
        precondition(16 + headerBytes + message.payload.readableBytes <= 1 << 12, "a message larger than the limit")
    }
    return 0
}

func read(_ stream: [UInt8], pieces: Int) -> (messages: [EventStreamMessage], error: EventStreamError?) {
    var decoder = EventStreamDecoder(maximumMessageBytes: 1 << 12)
    var messages: [EventStreamMessage] = []
    var start = 0
    while start < stream.count {
        let end = min(stream.count, start + pieces)
        decoder.append(ByteBuffer(bytes: stream[start..<end]))
        start = end
        do {
            while let message = try decoder.next() { messages.append(message) }
        } catch {
            // Broken for good: the same error again, whatever arrives.
            decoder.append(ByteBuffer(bytes: stream))
            do {
                _ = try decoder.next()
                preconditionFailure("no error after \(error)")
            } catch let again {
                precondition(again == error, "\(again) after \(error)")
            }
            return (messages, error)
        }
    }
    return (messages, nil)
}

@_cdecl("FuzzEventStream_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
