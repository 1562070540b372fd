import AWSSigV4
import Benchmark
import Foundation

/// Signing as the Invoke client does it: hash the exact payload, then sign the four Lambda headers.
///
/// Each sample signs 1,000 times (`scalingFactor: .kilo`): a single signature is short enough that the
/// harness's own per-sample work (clock reads, malloc counting) was about a fifth of the figure. Read
/// the time and mallocs per 1,000 signatures (or pass `--scale`).
let benchmarks: @Sendable () -> Void = {
    let credentials = Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "FQoGZXIvYXdzEXAMPLETOKEN")
    let signer = SigV4Signer(service: "lambda", region: "us-east-1")
    let path = "/2015-03-31/functions/" + URIEncoding.encode("arn:aws:lambda:us-east-1:123456789012:function:orders:live") + "/invocations"
    let headers = [
        SigV4Header("content-type", "application/json"),
        SigV4Header("host", "lambda.us-east-1.amazonaws.com"),
        SigV4Header("x-amz-invocation-type", "RequestResponse"),
    ]
    let date = Date(timeIntervalSince1970: 1_768_037_400)

    // The gateway's path: the function's Invoke shape prepared once, the payload hashed straight in.
    let template = signer.prepare(method: "POST", path: path, fixedHeaders: Array(headers.prefix(2)), variableHeaderNames: ["x-amz-invocation-type"])
    for (name, size) in [("1 KB", 1024), ("256 KB", 256 * 1024)] {
        let body = [UInt8](repeating: UInt8(ascii: "a"), count: size)
        Benchmark(
            "SigV4 sign Invoke with a prepared template, \(name) body",
            configuration: .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], scalingFactor: .kilo, maxDuration: .seconds(3))
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(body.withUnsafeBytes { signer.sign(template, value: "RequestResponse", payload: $0, credentials: credentials, date: date) })
            }
        }
    }

    for (name, size) in [("1 KB", 1024), ("256 KB", 256 * 1024)] {
        let body = [UInt8](repeating: UInt8(ascii: "a"), count: size)
        Benchmark(
            "SigV4 sign Invoke, \(name) body",
            configuration: .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], scalingFactor: .kilo, maxDuration: .seconds(3))
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                let hash = body.withUnsafeBytes { SigV4Signer.payloadHash($0) }
                let request = SigV4Request(method: "POST", path: path, headers: headers, payloadHash: hash)
                blackHole(signer.sign(request, credentials: credentials, date: date))
            }
        }
    }
}
