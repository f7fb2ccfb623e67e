import NetTransport

extension RPCConnection {
    /// Calls `method` once for each of `requests`, all of them in flight at once, and returns
    /// each call's outcome in the order of `requests`.
    ///
    /// For one task with many independent calls to make (a multi-get, a fan-out of writes): the
    /// requests go out back to back (over TCP, those sent in one turn leave in one write), and
    /// the task waits once for each run of replies the connection reads rather than once per
    /// call, with no task per call. More requests than the connection takes at once (this side's
    /// and the server's ``RPCConfiguration/maximumConcurrentCalls``) go out as the earliest ones
    /// are answered.
    ///
    /// Every call has the same `options` (deadline, metadata, cancellability). Each outcome is its
    /// own: a handler's error fails its call only; a lost connection fails every call not yet
    /// answered with ``RPCError/Code/connectionLost``. Once the task is cancelled (and the calls are
    /// cancellable), requests not yet sent fail with ``RPCError/Code/cancelled`` without being sent,
    /// and those in flight are cancelled as ``call(_:_:options:)`` cancels.
    public func callAll<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ requests: some Sequence<Request>, options: RPCCallOptions = .init()
    ) async -> [Result<Response, RPCError>] {
        var outcomes: [Result<Response, RPCError>] = []
        outcomes.reserveCapacity(requests.underestimatedCount)
        // Calls sent and not yet collected, oldest first from `next`: (index in `outcomes`, call ID).
        var sent: [(index: Int, id: UInt64)] = []
        sent.reserveCapacity(requests.underestimatedCount)
        var next = 0
        for request in requests {
            let index = outcomes.count
            if options.cancellable && Task.isCancelled {
                outcomes.append(.failure(RPCError(.cancelled, "the call was cancelled before it was sent")))
                continue
            }
            outcomes.append(.failure(RPCError(.unknown, "not sent")))
            // Full: collect our own oldest call first. Waiting for room instead would wait on
            // calls only this task collects.
            while next < sent.count && pendingCount >= callLimit {
                outcomes[sent[next].index] = await collect(method, sent[next].id, options)
                next += 1
            }
            do {
                sent.append((index, try await begin(method, request, options: options, kind: .request)))
            } catch {
                outcomes[index] = .failure(error)
            }
        }
        while next < sent.count {
            outcomes[sent[next].index] = await collect(method, sent[next].id, options)
            next += 1
        }
        return outcomes
    }

    /// Waits for call `id`'s response (often already in) and decodes it.
    private func collect<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ id: UInt64, _ options: RPCCallOptions
    ) async -> Result<Response, RPCError> {
        do {
            return .success(try decode(method, try await wait(id, deadline: options.deadline, cancellable: options.cancellable)))
        } catch {
            return .failure(error)
        }
    }
}
