// libFuzzer target: the bytes an upstream (Lambda) connection reads, through the gateway's own
// HTTP/1.1 response parser (`UpstreamResponseParser`). The first byte picks the size of the pieces
// the rest arrives in and whether the request was a HEAD. Fed whole and fed in pieces, the bytes
// must make the same answers (a parser that depends on where reads end frames answers two ways),
// and whatever it accepts must be safe to hand on.
import FuzzSupport
import LambdaPayload
import NIOCore

@testable import LambdaInvoke

struct Answer: Equatable {
    var status: Int
    var fields: [String]
    var keepAlive: Bool
    var contentLength: Int?
    var body: [UInt8] = []
    var ended = false
}

struct Outcome: Equatable {
    var answers: [Answer] = []
    var failed = false
}

func parse(_ bytes: UnsafeBufferPointer<UInt8>, piece: Int, answersHEAD: Bool) -> Outcome {
    var parser = UpstreamResponseParser()
    parser.answersHEAD = answersHEAD
    var outcome = Outcome()
    var buffer = ByteBuffer()
    func take(_ event: UpstreamResponseParser.Event) {
        switch event {
        case .head(let head):
            precondition(head.status >= 200 && head.status <= 999, "status \(head.status)")
            for (name, value) in head.headers {
                precondition(HTTPField.isToken(name), "field name \(name.debugDescription)")
                precondition(!value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }, "field value \(value.debugDescription)")
                precondition(value.utf8.first != 0x20 && value.utf8.last != 0x20, "untrimmed value \(value.debugDescription)")
            }
            outcome.answers.append(Answer(status: head.status, fields: head.headers.map { "\($0.name):\($0.value)" }, keepAlive: head.keepAlive, contentLength: head.contentLength))
        case .body(let bytes):
            precondition(!outcome.answers.isEmpty && !outcome.answers[outcome.answers.count - 1].ended, "body bytes outside an answer")
            precondition(bytes.readableBytes > 0, "an empty body piece")
            outcome.answers[outcome.answers.count - 1].body += bytes.readableBytesView
        case .end:
            precondition(!outcome.answers.isEmpty && !outcome.answers[outcome.answers.count - 1].ended, "an end outside an answer")
            outcome.answers[outcome.answers.count - 1].ended = true
        }
    }
    do throws(UpstreamResponseParser.Error) {
        var offset = 0
        repeat {
            let end = min(offset + piece, bytes.count)
            buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while let event = try parser.next(&buffer) { take(event) }
        } while offset < bytes.count
        if let event = try parser.inputEnded(buffer) { take(event) }
    } catch {
        outcome.failed = true
    }
    for answer in outcome.answers {
        if let length = answer.contentLength, answer.ended { precondition(answer.body.count == length, "\(answer.body.count) body bytes for Content-Length \(length)") }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let piece = 1 + Int(data[0] & 0x3F)
    let answersHEAD = data[0] & 0x80 != 0
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let whole = parse(bytes, piece: max(bytes.count, 1), answersHEAD: answersHEAD)
    let pieces = parse(bytes, piece: piece, answersHEAD: answersHEAD)
    precondition(whole == pieces, "whole: \(whole)\nin pieces of \(piece): \(pieces)")
    precondition(whole.answers.reduce(0) { $0 + $1.body.count } <= bytes.count)
    return 0
}

@_cdecl("FuzzUpstreamResponse_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
