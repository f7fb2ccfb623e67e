#if canImport(Glibc)
import Glibc
#endif
import CURing
import Logging

/// Starting a core: a pthread, pinned to its CPU, that builds its backend on itself (an io_uring
/// ring set up `SINGLE_ISSUER` belongs to the thread that created it), reports back, then runs
/// the loop until the core stops.
enum CoreThread {
    /// What the new thread reports to the thread that started it.
    private final class Handshake {
        var semaphore = sem_t()
        var result: Result<Void, any Error> = .success(())
        init() { sem_init(&semaphore, 0, 0) }
        deinit { sem_destroy(&semaphore) }
    }

    private final class Start {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts core `index` and returns its executor once its backend is up.
    ///
    /// - Throws: the backend's setup error (the caller may retry with another backend), or an
    ///   ``IOError`` if the thread cannot be created or pinned.
    static func start(
        index: Int, cpu: Int?, settings: CoreLoopSettings, makeBackend: @escaping () throws -> any IOBackend
    ) throws -> CoreExecutor {
        let executor = CoreExecutor()
        let handshake = Handshake()
        let start = Start {
            if let cpu {
                let rc = curing_pin_current_thread(Int32(cpu))
                if rc != 0 {
                    handshake.result = .failure(IOError(code: -rc, operation: .affinity))
                    sem_post(&handshake.semaphore)
                    return
                }
            }
            curing_set_thread_name("net-core-\(index)")
            let backend: any IOBackend
            do {
                backend = try makeBackend()
            } catch {
                handshake.result = .failure(error)
                sem_post(&handshake.semaphore)
                return
            }
            executor.thread = pthread_self()
            executor.waker = backend.waker
            executor.ownedLoop = CoreLoop(
                index: index, cpu: cpu, backend: backend, executor: executor, settings: settings)
            CoreThread.setCurrent(executor)
            sem_post(&handshake.semaphore)
            executor.loop.run()
            CoreThread.setCurrent(nil)
        }
        let thread = try spawn(start)
        while sem_wait(&handshake.semaphore) != 0 && errno == EINTR {}
        if case .failure(let error) = handshake.result {
            pthread_join(thread, nil)
            throw error
        }
        return executor
    }

    /// Runs `body` on a new detached thread named `name`.
    static func detach(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Start {
            curing_set_thread_name(name)
            body()
        }
        if let thread = try? spawn(start) {
            pthread_detach(thread)
        } else {
            body()
        }
    }

    /// Creates a thread running `start`.
    private static func spawn(_ start: Start) throws(IOError) -> pthread_t {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(start).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            throw IOError(code: rc, operation: .threadCreate)
        }
        return thread
    }

    /// Waits for a core's thread to end.
    static func join(_ executor: CoreExecutor) {
        pthread_join(executor.thread, nil)
    }

    // The executor of the core whose thread is calling, kept in a pthread key (not on any hot path).
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func setCurrent(_ executor: CoreExecutor?) {
        pthread_setspecific(key, executor.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    static var current: CoreExecutor? {
        pthread_getspecific(key).map { Unmanaged<CoreExecutor>.fromOpaque($0).takeUnretainedValue() }
    }
}

func curingThreadID() -> Int32 { curing_gettid() }
func curingCurrentCPU() -> Int32 { curing_current_cpu() }
