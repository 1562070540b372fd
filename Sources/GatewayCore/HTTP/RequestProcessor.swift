import AWSSigV4
import Atomics
import Foundation
import LambdaInvoke
import LambdaPayload
import Logging
import MeshIdentity
import NIOCore
import NIOPosix
import Synchronization
import Tracing

/// Turns an authenticated request into a Lambda call and its answer into a response, in steps a
/// reader can follow top to bottom in `process`:
/// - `admit` (RequestProcessor+Admission.swift): the service is still served, the path
///   normalizes, intentions allow the caller;
/// - `prepare` (RequestProcessor+Payload.swift): limits, forwarded headers, the Invoke payload;
/// - the signed call (`LambdaInvokeClient.invoke(_:on:completion:)`);
/// - `finish` (RequestProcessor+Answer.swift): Lambda's answer or error as the client's response;
/// - `ended` (RequestProcessor+End.swift), called by the handlers once the answer is written:
///   `/metrics` and the access log.
/// Everything but the call itself is synchronous.
public final class RequestProcessor: Sendable {
    let store: SnapshotStore
    let invoker: LambdaInvokeClient
    public let settings: ProcessingSettings
    let logger: Logger
    private let inFlight = ManagedAtomic<Int>(0)
    /// Woken when `inFlight` becomes zero (graceful shutdown).
    private let idle = ZeroWaiters()
    /// Requests whose payload was made and hashed on the thread pool (`offloadedBodyBytes`).
    let offloadedPreparations = ManagedAtomic<Int>(0)
    /// Large Lambda answers decoded on the thread pool (`decodeOffTheLoop`).
    let offloadedAnswers = ManagedAtomic<Int>(0)
    /// Large payloads being made, or large answers decoded, on the pool now; past `maximumOffloads` an event loop makes its own,
    /// which also slows its reading of more bodies, as before the pool.
    let offloadsInFlight = ManagedAtomic<Int>(0)
    /// Shared by large bodies and large answers: a burst of large answers can send a large body's
    /// preparation back to its loop, and the other way round.
    static let maximumOffloads = 2 * System.coreCount
    /// The threads that make large payloads and decode large answers: the gateway's own, so that snapshot builds on NIO's
    /// shared pool never queue behind a caller's bodies. Made on first use, kept for the process.
    static let preparationPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: System.coreCount)
        pool.start()
        return pool
    }()
    let requestIDs = RequestIDGenerator()
    public let metrics: GatewayMetrics
    /// The access log, when the gateway keeps one (its settings may still turn it off).
    public let accessLog: AccessLog?
    /// The tracer for the gateway's span around each Lambda call; nil (the default build) traces nothing.
    let tracer: (any Tracer)?
    /// Established connections by service, drained when their service stops being served.
    public let connections = OpenConnections()
    /// Compiled intentions per (snapshot version, service); a new snapshot replaces them all.
    let evaluators = Mutex<(version: UInt64, byService: [String: IntentionEvaluator])>((0, [:]))

    public init(
        store: SnapshotStore, invoker: LambdaInvokeClient, settings: ProcessingSettings = ProcessingSettings(), metrics: GatewayMetrics = GatewayMetrics(),
        accessLog: AccessLog? = nil, tracer: (any Tracer)? = nil, logger: Logger
    ) {
        self.tracer = tracer
        self.store = store
        self.invoker = invoker
        self.settings = settings
        self.metrics = metrics
        self.accessLog = accessLog
        self.logger = logger
        let connections = self.connections
        store.onPublish { previous, current in
            for service in previous.services.keys where current.services[service] == nil {
                let drained = connections.drain(service: service)
                if drained > 0 { logger.info("service no longer served; draining its connections", metadata: ["service": "\(service)", "connections": "\(drained)"]) }
            }
        }
    }

    public static let accessDenied = LambdaHTTPResponse(
        status: 403,
        headers: [HTTPField("content-type", "text/plain")],
        body: ByteBuffer(string: "RBAC: access denied")
    )

    public var inFlightCount: Int { inFlight.load(ordering: .relaxed) }

    /// Requests whose payload was made and hashed on the thread pool so far (`offloadedBodyBytes`).
    public var offloadedPreparationCount: Int { offloadedPreparations.load(ordering: .relaxed) }

    /// Lambda answers of `offloadedBodyBytes` or more decoded on the thread pool so far.
    public var offloadedAnswerCount: Int { offloadedAnswers.load(ordering: .relaxed) }

    /// Waits until no request is in flight, or `timeout` passes (graceful shutdown): woken by the
    /// request that ends last.
    public func waitUntilIdle(timeout: Duration) async {
        await idle.wait(until: .now + timeout) { self.inFlight.load(ordering: .sequentiallyConsistent) == 0 }
    }

    /// A response, and the bytes of the connection's answer budget it still holds (the Lambda
    /// answer it was built from): the handler gives them back once it has accounted for the
    /// response it writes, or at once when it writes none.
    struct Processed {
        var answer: Answer
        var heldBytes: Int
        /// A streamed answer: `answer.response` is its head, and the body follows from the stream.
        var stream: ResponseStream?
        var response: LambdaHTTPResponse { answer.response }

        init(answer: Answer, heldBytes: Int, stream: ResponseStream? = nil) {
            self.answer = answer
            self.heldBytes = heldBytes
            self.stream = stream
        }
    }

    /// How a connection's handler has a complete request answered, on the connection's event loop:
    /// `process` below, unless a test answers requests itself.
    typealias Process = (GatewayRequest, any EventLoop, RequestCancellation, @escaping Completion) -> Void

    /// Takes a request's answer, on the connection's event loop: once, perhaps before `process`
    /// returns (an answer made at once, as a refusal).
    typealias Completion = @Sendable (Processed) -> Void

    /// The request's answer, handed to `completion` on `eventLoop` (the connection's). `budget`: the
    /// client connection's answer bytes, which pace reading Lambda's answer. `cancellation`:
    /// cancelled by the handler when the caller goes away before the answer.
    ///
    /// The usual request runs on the connection's event loop from first byte to last, with no task
    /// and no future: admit, prepare and sign from within the read that completed it, the Invoke
    /// call's answer as a callback on the same loop. A task is made only where something must be
    /// awaited: a large body's payload made on the thread pool, a streamed answer, a traced call.
    /// (An earlier inline path cost more CPU under load than a task per request; the cause was when
    /// the sockets were flushed, not the task: BENCHMARKS.md, "No task per request, flushes at the
    /// end of the tick".)
    func process(
        _ request: GatewayRequest, connection: ClientConnection, budget: ResponseBudget?, answeringOn eventLoop: any EventLoop, cancellation: RequestCancellation? = nil,
        completion: @escaping Completion
    ) {
        inFlight.wrappingIncrement(ordering: .relaxed)
        guard tracer == nil, request.body.readableBytes < settings.offloadedBodyBytes else {
            let cancellation = cancellation.map { NIOLoopBound($0, eventLoop: eventLoop) }
            answerFromTask(on: eventLoop, completion: completion) {
                await self.processed(request, connection: connection, budget: budget, eventLoop: eventLoop, cancellation: cancellation)
            }
            return
        }
        switch prepare(request, connection: connection, budget: budget) {
        case .answer(let early):
            requestEnded()
            completion(Processed(answer: early, heldBytes: 0))
        case .invoke(let call) where call.lambda.invokeMode == .responseStream:
            let cancellation = cancellation.map { NIOLoopBound($0, eventLoop: eventLoop) }
            answerFromTask(on: eventLoop, completion: completion) {
                await self.streamed(call, on: eventLoop, cancellation: cancellation)
            }
        case .invoke(let call):
            let started = NIODeadline.now()
            invoker.invoke(call.invocation, on: eventLoop) { result in
                // The handlers' completions read loop-bound state: a callback off the loop would
                // fail there, deep in a handler, rather than here.
                eventLoop.assertInEventLoop()
                let callTime = NIODeadline.now() - started
                if case .success(let value) = result, value.payload.readableBytes >= self.settings.offloadedBodyBytes {
                    self.decodeOffTheLoop(call, result: result, callTime: callTime, answeringOn: eventLoop, completion: completion)
                    return
                }
                self.requestEnded()
                completion(self.processed(call, result: result, callTime: callTime))
            }
        }
    }

    /// A large answer (a Lambda payload of `offloadedBodyBytes` or more: up to 6 MB of JSON to
    /// parse, and base64 to decode) is made into the client's response on the preparation pool,
    /// as a large body's payload is, and handed to `completion` back on `eventLoop`: decoding
    /// megabytes there would hold up the loop's other connections. Past `maximumOffloads`, or
    /// when the pool is shutting down, the loop decodes it itself. `callTime`: the Lambda call's,
    /// taken before the hand-off, so that a wait for the pool is not counted as Lambda's.
    private func decodeOffTheLoop(
        _ call: Call, result: Result<LambdaInvocationResult, LambdaInvokeError>, callTime: TimeAmount, answeringOn eventLoop: any EventLoop,
        completion: @escaping Completion
    ) {
        guard offloadsInFlight.wrappingIncrementThenLoad(ordering: .relaxed) <= Self.maximumOffloads else {
            offloadsInFlight.wrappingDecrement(ordering: .relaxed)
            requestEnded()
            completion(processed(call, result: result, callTime: callTime))
            return
        }
        Self.preparationPool.runIfActive(eventLoop: eventLoop) {
            self.processed(call, result: result, callTime: callTime)
        }.whenComplete { outcome in
            self.offloadsInFlight.wrappingDecrement(ordering: .relaxed)
            let processed: Processed
            switch outcome {
            case .success(let offTheLoop):
                self.offloadedAnswers.wrappingIncrement(ordering: .relaxed)
                processed = offTheLoop
            case .failure:
                processed = self.processed(call, result: result, callTime: callTime)
            }
            self.requestEnded()
            completion(processed)
        }
    }

    /// `work` in a task; its answer handed to `completion` on `eventLoop`, the request counted out
    /// just before.
    private func answerFromTask(on eventLoop: any EventLoop, completion: @escaping Completion, _ work: @escaping @Sendable () async -> Processed) {
        Task {
            let processed = await work()
            self.requestEnded()
            eventLoop.execute { completion(processed) }
        }
    }

    /// A request counted in `inFlight` is answered. The decrement is sequentially consistent, as
    /// `ZeroWaiters` requires of the change that brings the count to zero; the increment in
    /// `process` need not be (relaxed on purpose).
    private func requestEnded() {
        if inFlight.wrappingDecrementThenLoad(ordering: .sequentiallyConsistent) == 0 { idle.reachedZero() }
    }

    /// `process` in a task: a large body's payload, a streamed answer, a traced call.
    /// `eventLoop`: the connection's, where a streamed answer's events arrive.
    private func processed(
        _ request: GatewayRequest, connection: ClientConnection, budget: ResponseBudget?, eventLoop: any EventLoop, cancellation: NIOLoopBound<RequestCancellation>? = nil
    ) async -> Processed {
        switch await prepared(request, connection: connection, budget: budget) {
        case .answer(let early):
            return Processed(answer: early, heldBytes: 0)
        case .invoke(let call) where call.lambda.invokeMode == .responseStream:
            guard let tracer else { return await streamed(call, on: eventLoop, cancellation: cancellation) }
            return await tracedCall(call, headers: request.headers, tracer: tracer) { await self.streamed($0, on: eventLoop, cancellation: cancellation) }
        case .invoke(let call):
            guard let tracer else { return await invoked(call) }
            return await tracedCall(call, headers: request.headers, tracer: tracer, invoke: invoked)
        }
    }

    /// `prepare`, on the preparation pool for a large body, with the payload's SigV4 hash made there
    /// too: encoding and hashing megabytes would hold up the event loop's other connections.
    private func prepared(_ request: GatewayRequest, connection: ClientConnection, budget: ResponseBudget?) async -> Preparation {
        guard request.body.readableBytes >= settings.offloadedBodyBytes else { return prepare(request, connection: connection, budget: budget) }
        return await offloaded(counting: offloadedPreparations) {
            var preparation = self.prepare(request, connection: connection, budget: budget)
            if case .invoke(let call) = preparation {
                var invocation = call.invocation
                invocation.payloadHash = invocation.payload.withUnsafeReadableBytes { SigV4Signer.payloadHash($0, prefix: invocation.payloadPrefix) }
                preparation = .invoke(call.with(invocation: invocation, traceID: call.traceID))
            }
            return preparation
        }
    }

    /// `work` on the preparation pool while fewer than `maximumOffloads` jobs are there, counted in
    /// `counter`; on the caller's own thread past that, or once the pool is shutting down.
    private func offloaded<T: Sendable>(counting counter: ManagedAtomic<Int>, _ work: @escaping @Sendable () -> T) async -> T {
        defer { offloadsInFlight.wrappingDecrement(ordering: .relaxed) }
        guard offloadsInFlight.wrappingIncrementThenLoad(ordering: .relaxed) <= Self.maximumOffloads else { return work() }
        do {
            let result = try await Self.preparationPool.runIfActive(work)
            counter.wrappingIncrement(ordering: .relaxed)
            return result
        } catch {
            return work()
        }
    }

    /// The signed call and its answer.
    private func invoked(_ call: Call) async -> Processed {
        let started = NIODeadline.now()
        let result: Result<LambdaInvocationResult, LambdaInvokeError>
        do {
            result = .success(try await invoker.invoke(call.invocation))
        } catch {
            result = .failure(error)
        }
        let callTime = NIODeadline.now() - started
        guard case .success(let value) = result, value.payload.readableBytes >= settings.offloadedBodyBytes else {
            return processed(call, result: result, callTime: callTime)
        }
        // A large answer, as in `decodeOffTheLoop`: tasks run on the event loops too.
        return await offloaded(counting: offloadedAnswers) { self.processed(call, result: result, callTime: callTime) }
    }

    /// The client's answer to `call` from Lambda's result, with the call's time and attempts.
    private func processed(_ call: Call, result: Result<LambdaInvocationResult, LambdaInvokeError>, callTime: TimeAmount) -> Processed {
        var answer = finish(call, result: result)
        answer.lambdaCallNanoseconds = Int(callTime.nanoseconds)
        switch result {
        case .success(let value): answer.attempts = value.attempts
        case .failure(let error): answer.attempts = error.attempts
        }
        let held = (try? result.get())?.heldBytes ?? 0
        return Processed(answer: consume answer, heldBytes: held)
    }
}
