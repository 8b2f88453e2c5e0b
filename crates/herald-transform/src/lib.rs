//! Runs endpoint transformations: JavaScript programs of the shape
//! `function handler(webhook) { ...; return webhook; }` on QuickJS.
//!
//! A QuickJS runtime cannot leave the thread that made it, and making one
//! costs far more than a call, so an [`Engine`] keeps a few threads that
//! each hold compiled programs (one runtime each, so a program's heap limit
//! is its own) keyed by the program's digest; deliveries hand calls to them
//! over a channel and await the answer.
//!
//! What a program can reach: the language and its built-ins, nothing else.
//! No modules, no `std`/`os`, no `fetch`, no timers; `Math.random` throws and
//! `Date` is fixed to the event's time, so a program is deterministic. Each
//! call is stopped after its time limit (through the runtime's interrupt
//! handler) and each program's runtime is capped at its heap limit.
//!
//! The rules that need no engine (limits, the input, what a result must look
//! like) are `herald_core::transform`'s.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
};

use herald_core::{
    signing::SigningScheme,
    transform::{Input, Limits, Outcome, ScriptError, ScriptErrorKind, Transformation, interpret},
};
use rquickjs::{CatchResultExt, CaughtError, Context, Function, Persistent, Runtime};
use serde_json::Value;

/// The file name a program's errors are reported in.
const PROGRAM_FILE: &str = "transformation.js";
/// Deep recursion fails with a RangeError well before the thread's stack.
const MAX_JS_STACK_BYTES: usize = 512 * 1024;
const WORKER_STACK_BYTES: usize = 4 * 1024 * 1024;
/// Compiled programs each engine thread keeps (a few hundred KiB each); the
/// oldest goes first.
const PROGRAMS_PER_THREAD: usize = 64;

/// Runs before a program: fixes `Date` to the event's time and removes
/// randomness. Evaluates to the function that sets the time for a call.
const PRELUDE: &str = r#"(() => {
  const RealDate = Date;
  let now = 0;
  function FixedDate(...args) {
    if (new.target === undefined) return new RealDate(now).toString();
    return args.length === 0 ? new RealDate(now) : new RealDate(...args);
  }
  Object.defineProperty(FixedDate, "name", { value: "Date" });
  FixedDate.prototype = RealDate.prototype;
  Object.defineProperty(RealDate.prototype, "constructor", { value: FixedDate });
  FixedDate.now = () => now;
  FixedDate.parse = RealDate.parse;
  FixedDate.UTC = RealDate.UTC;
  globalThis.Date = FixedDate;
  Math.random = () => {
    throw new Error("Math.random is not available: transformations are deterministic");
  };
  return (time) => { now = time; };
})()"#;

/// Runs after a program: takes its `handler` and evaluates to the function
/// a call goes through (JSON text in, JSON text out).
const RUNNER: &str = r#"((setNow) => {
  if (typeof handler !== "function") {
    throw new SyntaxError("the program must define function handler(webhook)");
  }
  const run = handler;
  return (input, time) => {
    setNow(time);
    const result = run(JSON.parse(input));
    return result === undefined ? "null" : JSON.stringify(result);
  };
})"#;

/// The engine's threads, shared by every delivery.
#[derive(Clone, Debug)]
pub struct Engine {
    queue: mpsc::Sender<Call>,
    limits: Limits,
}

#[derive(Debug)]
struct Call {
    program: Transformation,
    input: String,
    now_millis: f64,
    answer: tokio::sync::oneshot::Sender<Result<Value, ScriptError>>,
}

/// The engine could not start its threads.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a transformation thread: {0}")]
pub struct StartError(#[from] std::io::Error);

impl Engine {
    /// Starts `threads` engine threads (at least one). They stop when the
    /// last clone of the engine is dropped.
    pub fn start(threads: usize, limits: Limits) -> Result<Engine, StartError> {
        let (queue, calls) = mpsc::channel::<Call>();
        let calls = Arc::new(Mutex::new(calls));
        for index in 0..threads.max(1) {
            let calls = Arc::clone(&calls);
            thread::Builder::new()
                .name(format!("herald-transform-{index}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || serve(&calls, limits))?;
        }
        Ok(Engine { queue, limits })
    }

    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs `program` on `input` with `Date` fixed at `now_millis` (Unix
    /// milliseconds) and reads the result against the endpoint's signing
    /// scheme.
    pub async fn run(
        &self,
        program: &Transformation,
        input: &Input,
        now_millis: i64,
        scheme: &SigningScheme,
    ) -> Result<Outcome, ScriptError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let call = Call {
            program: program.clone(),
            input: input.json().to_owned(),
            // Exact for every millisecond within 285,000 years of 1970.
            now_millis: now_millis as f64,
            answer,
        };
        let stopped = || ScriptError::new(ScriptErrorKind::Engine, "the engine has stopped");
        self.queue.send(call).map_err(|_| stopped())?;
        let result = answered.await.map_err(|_| stopped())??;
        interpret(result, scheme, input)
    }
}

/// Compiles `code` and checks that it defines `handler`, as saving it does.
/// Top-level code runs once here, within the time limit.
pub fn check(code: &str, limits: Limits) -> Result<(), ScriptError> {
    Compiled::new(code, limits).map(drop)
}

/// Runs `code` once in a runtime of its own: for simulations, which are
/// rare and must not share a delivery thread.
pub fn run_once(
    code: &str,
    input: &Input,
    now_millis: i64,
    limits: Limits,
    scheme: &SigningScheme,
) -> Result<Outcome, ScriptError> {
    let compiled = Compiled::new(code, limits)?;
    let result = compiled.call(input.json(), now_millis as f64, limits)?;
    interpret(result, scheme, input)
}

fn serve(calls: &Mutex<mpsc::Receiver<Call>>, limits: Limits) {
    let mut programs = Programs::default();
    loop {
        let call = {
            let calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
            match calls.recv() {
                Ok(call) => call,
                Err(mpsc::RecvError) => return,
            }
        };
        let result = programs.call(&call.program, &call.input, call.now_millis, limits);
        // The delivery may have stopped waiting (shutdown); nothing to tell.
        let _ = call.answer.send(result);
    }
}

/// One thread's compiled programs, by digest.
#[derive(Default)]
struct Programs {
    compiled: HashMap<[u8; 32], Compiled>,
    order: VecDeque<[u8; 32]>,
}

impl Programs {
    fn call(
        &mut self,
        program: &Transformation,
        input: &str,
        now_millis: f64,
        limits: Limits,
    ) -> Result<Value, ScriptError> {
        let digest = program.digest();
        if !self.compiled.contains_key(&digest) {
            let compiled = Compiled::new(program.code(), limits)?;
            if self.order.len() >= PROGRAMS_PER_THREAD
                && let Some(oldest) = self.order.pop_front()
            {
                self.compiled.remove(&oldest);
            }
            self.order.push_back(digest);
            self.compiled.insert(digest, compiled);
        }
        let compiled = self.compiled.get(&digest).ok_or_else(|| {
            ScriptError::new(ScriptErrorKind::Engine, "the compiled program went missing")
        })?;
        let result = compiled.call(input, now_millis, limits);
        // A runtime that ran out of heap or was interrupted mid-way may hold
        // half-built state; the next call starts from a fresh one.
        if let Err(error) = &result
            && matches!(
                error.kind,
                ScriptErrorKind::MemoryLimit | ScriptErrorKind::TimeLimit
            )
        {
            self.compiled.remove(&digest);
            self.order.retain(|kept| *kept != digest);
        }
        result
    }
}

/// A program compiled in a runtime of its own. Fields drop in order: the
/// runner before the context before the runtime.
struct Compiled {
    runner: Persistent<Function<'static>>,
    context: Context,
    runtime: Runtime,
    deadline: Deadline,
}

/// When the running call must stop, in the engine thread's CPU time (a
/// busy machine does not fail a program that was not running), shared with
/// the interrupt handler, which runs on the same thread.
#[derive(Clone)]
struct Deadline {
    /// Nanoseconds of the thread's CPU time; 0: no call running.
    at: Arc<AtomicU64>,
}

fn thread_cpu_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(now.tv_sec)
        .unwrap_or_default()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or_default())
}

impl Deadline {
    fn new() -> Deadline {
        Deadline {
            at: Arc::new(AtomicU64::new(0)),
        }
    }

    fn start(&self, limits: Limits) {
        let limit = u64::try_from(limits.time.as_nanos()).unwrap_or(u64::MAX);
        let at = thread_cpu_nanos().saturating_add(limit).max(1);
        self.at.store(at, Ordering::Relaxed);
    }

    fn clear(&self) {
        self.at.store(0, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        at != 0 && thread_cpu_nanos() >= at
    }
}

impl Compiled {
    fn new(code: &str, limits: Limits) -> Result<Compiled, ScriptError> {
        let engine = |error: rquickjs::Error| {
            ScriptError::new(
                ScriptErrorKind::Engine,
                format!("cannot start a runtime: {error}"),
            )
        };
        let runtime = Runtime::new().map_err(engine)?;
        runtime.set_memory_limit(limits.heap_bytes);
        runtime.set_max_stack_size(MAX_JS_STACK_BYTES);
        let deadline = Deadline::new();
        let interrupt = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || interrupt.passed())));
        let context = Context::full(&runtime).map_err(engine)?;
        deadline.start(limits);
        let runner = context.with(|ctx| {
            let set_now: Function = ctx
                .eval(PRELUDE)
                .catch(&ctx)
                .map_err(|error| script_error(&error, &deadline, ScriptErrorKind::Engine))?;
            let mut options = rquickjs::context::EvalOptions::default();
            options.global = true;
            options.strict = false;
            options.filename = Some(PROGRAM_FILE.to_owned());
            ctx.eval_with_options::<(), _>(code, options)
                .catch(&ctx)
                .map_err(|error| script_error(&error, &deadline, ScriptErrorKind::Syntax))?;
            let make_runner: Function = ctx
                .eval(RUNNER)
                .catch(&ctx)
                .map_err(|error| script_error(&error, &deadline, ScriptErrorKind::Engine))?;
            let runner: Function = make_runner
                .call((set_now,))
                .catch(&ctx)
                .map_err(|error| script_error(&error, &deadline, ScriptErrorKind::Syntax))?;
            Ok::<_, ScriptError>(Persistent::save(&ctx, runner))
        });
        deadline.clear();
        Ok(Compiled {
            runner: runner?,
            context,
            runtime,
            deadline,
        })
    }

    fn call(&self, input: &str, now_millis: f64, limits: Limits) -> Result<Value, ScriptError> {
        self.deadline.start(limits);
        let output = self.context.with(|ctx| {
            let runner =
                self.runner.clone().restore(&ctx).map_err(|error| {
                    ScriptError::new(ScriptErrorKind::Engine, error.to_string())
                })?;
            runner
                .call::<_, String>((input, now_millis))
                .catch(&ctx)
                .map_err(|error| script_error(&error, &self.deadline, ScriptErrorKind::Thrown))
        });
        self.deadline.clear();
        // Garbage from this call is not left to count against the next.
        self.runtime.run_gc();
        let output = output?;
        serde_json::from_str(&output).map_err(|error| {
            ScriptError::new(
                ScriptErrorKind::Malformed,
                format!("the result is not JSON: {error}"),
            )
        })
    }
}

/// A caught JavaScript failure as a [`ScriptError`]: a limit when the
/// deadline passed or the heap ran out, else `kind` with the message and
/// where in the program it happened.
fn script_error(
    error: &CaughtError<'_>,
    deadline: &Deadline,
    kind: ScriptErrorKind,
) -> ScriptError {
    let (message, stack) = match error {
        CaughtError::Exception(exception) => {
            let name = exception
                .get::<_, Option<String>>("name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Error".to_owned());
            let message = exception.message().unwrap_or_default();
            (format!("{name}: {message}"), exception.stack())
        }
        CaughtError::Value(value) => (format!("uncaught {}", describe_thrown(value)), None),
        CaughtError::Error(rquickjs::Error::Allocation) => {
            return ScriptError::new(
                ScriptErrorKind::MemoryLimit,
                "the program ran out of its heap",
            );
        }
        CaughtError::Error(error) => (error.to_string(), None),
    };
    if deadline.passed() && message.ends_with("interrupted") {
        return ScriptError::new(
            ScriptErrorKind::TimeLimit,
            "the program ran longer than its time limit",
        );
    }
    if message.contains("out of memory") {
        return ScriptError::new(
            ScriptErrorKind::MemoryLimit,
            "the program ran out of its heap",
        );
    }
    let location = stack
        .as_deref()
        .and_then(|stack| herald_core::transform::location_in(stack, PROGRAM_FILE));
    ScriptError {
        kind,
        message,
        line: location.map(|(line, _)| line),
        column: location.and_then(|(_, column)| column),
    }
}

fn describe_thrown(value: &rquickjs::Value<'_>) -> String {
    if let Some(text) = value.as_string().and_then(|text| text.to_string().ok()) {
        return format!("{text:?}");
    }
    value.type_name().to_owned()
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Programs")
            .field("compiled", &self.compiled.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use herald_core::transform::Shaped;
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_717_000_000_123;

    fn input() -> Input {
        input_with(br#"{"id":"evt_1","event":"message.received","data":{"text":"hi"}}"#)
    }

    fn input_with(envelope: &[u8]) -> Input {
        Input::new(
            envelope,
            vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Herald-Event".into(), "message.received".into()),
            ],
            "https://example.com/hook",
            "message.received",
        )
        .unwrap()
    }

    fn once(code: &str) -> Result<Outcome, ScriptError> {
        run_once(
            code,
            &input(),
            NOW,
            Limits::default(),
            &SigningScheme::Standard,
        )
    }

    fn body(code: &str) -> Value {
        match once(code).unwrap() {
            Outcome::Send(Shaped { body, .. }) => serde_json::from_slice(&body).unwrap(),
            Outcome::Cancel { .. } => panic!("cancelled"),
        }
    }

    #[test]
    fn a_handler_reshapes_the_delivery() {
        let outcome = once(
            "function handler(webhook) {\n\
               webhook.event = { kind: webhook.eventType, text: webhook.event.data.text, url: webhook.url };\n\
               webhook.headers = { 'X-Kind': webhook.headers['X-Herald-Event'] };\n\
               webhook.eventType = 'whatsapp.message.received';\n\
               return webhook;\n\
             }",
        )
        .unwrap();
        let Outcome::Send(shaped) = outcome else {
            panic!("cancelled")
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&shaped.body).unwrap(),
            serde_json::json!({"kind": "message.received", "text": "hi", "url": "https://example.com/hook"})
        );
        assert_eq!(
            shaped.headers,
            [("X-Kind".to_owned(), "message.received".to_owned())]
        );
        assert_eq!(
            shaped.event_type.as_deref(),
            Some("whatsapp.message.received")
        );
    }

    #[test]
    fn date_is_the_event_time_and_random_is_gone() {
        assert_eq!(
            body(
                "function handler(w) { w.event = [Date.now(), new Date().getTime(), new Date(0).getTime()]; return w; }"
            ),
            serde_json::json!([NOW, NOW, 0])
        );
        let error = once("function handler(w) { w.event = Math.random(); return w; }").unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::Thrown);
        assert!(error.message.contains("deterministic"), "{error}");
        assert_eq!(
            body(
                "function handler(w) { w.event = [typeof fetch, typeof require, typeof std, typeof os, typeof setTimeout]; return w; }"
            ),
            serde_json::json!([
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined"
            ])
        );
    }

    #[test]
    fn cancel_is_an_outcome() {
        assert_eq!(
            once(
                "function handler(w) { return { cancel: true, reason: 'test events are not wanted' }; }"
            ),
            Ok(Outcome::Cancel {
                reason: Some("test events are not wanted".into())
            })
        );
    }

    #[test]
    fn a_throw_names_its_line_and_column() {
        let error = once("function handler(w) {\n  const x = 1;\n  throw new Error('boom');\n}")
            .unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::Thrown);
        assert_eq!(error.message, "Error: boom");
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.column.is_some(), "{error}");
        let error = once("function handler(w) {\n  return w.event.missing.deeper;\n}").unwrap_err();
        assert!(error.message.starts_with("TypeError"), "{error}");
        assert_eq!(error.line, Some(2), "{error}");
        let error = once("function handler(w) { throw 'plain'; }").unwrap_err();
        assert!(error.message.contains("plain"), "{error}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = check(
            "function handler(w) {\n  return w;\n  let = ;\n}",
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::Syntax);
        assert!(error.message.starts_with("SyntaxError"), "{error}");
        assert_eq!(error.line, Some(3), "{error}");
        let error = check("function other(w) { return w; }", Limits::default()).unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::Syntax);
        assert!(error.message.contains("handler"), "{error}");
        check("function handler(w) { return w; }", Limits::default()).unwrap();
        check("const handler = (w) => w;", Limits::default()).unwrap();
        check("var handler = (w) => w;", Limits::default()).unwrap();
    }

    #[test]
    fn an_endless_loop_is_stopped_in_time() {
        let started = Instant::now();
        let error = once("function handler(w) { for (;;) {} }").unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::TimeLimit, "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let error = check(
            "for (;;) {}\nfunction handler(w) { return w; }",
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::TimeLimit, "{error}");
    }

    #[test]
    fn a_huge_allocation_hits_the_heap_limit() {
        let error = once(
            "function handler(w) { const a = []; for (;;) { a.push('x'.repeat(1024) + a.length); } }",
        )
        .unwrap_err();
        assert!(
            matches!(
                error.kind,
                ScriptErrorKind::MemoryLimit | ScriptErrorKind::TimeLimit
            ),
            "{error}"
        );
        let error =
            once("function handler(w) { w.event = 'x'.repeat(64 * 1024 * 1024); return w; }")
                .unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::MemoryLimit, "{error}");
        let error = once("function handler(w) { return handler(w); }").unwrap_err();
        assert!(error.message.contains("stack"), "{error}");
    }

    #[tokio::test]
    async fn the_engine_reuses_compiled_programs_across_calls() {
        let engine = Engine::start(2, Limits::default()).unwrap();
        let program = Transformation::new(
            "let calls = 0;\nfunction handler(w) { calls += 1; w.event = calls > 0; return w; }",
        )
        .unwrap()
        .unwrap();
        for _ in 0..20 {
            let outcome = engine
                .run(&program, &input(), NOW, &SigningScheme::Standard)
                .await
                .unwrap();
            assert!(matches!(outcome, Outcome::Send(Shaped { ref body, .. }) if body == b"true"));
        }
        let endless = Transformation::new("function handler(w) { while (true) {} }")
            .unwrap()
            .unwrap();
        let error = engine
            .run(&endless, &input(), NOW, &SigningScheme::Standard)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::TimeLimit);
        // The thread that stopped it still serves.
        engine
            .run(&program, &input(), NOW, &SigningScheme::Standard)
            .await
            .unwrap();
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            // Integers JavaScript holds exactly; fractions may come back in
            // another spelling (0.0 as 0), which is the same JSON number.
            any::<i32>().prop_map(|n| serde_json::json!(n)),
            ".{0,16}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_event_comes_back_unchanged_through_the_identity(event in json_value()) {
            let envelope = event.to_string();
            let outcome = run_once("function handler(w) { return w; }", &input_with(envelope.as_bytes()), NOW, Limits::default(), &SigningScheme::Standard);
            match outcome {
                Ok(Outcome::Send(shaped)) => {
                    let sent: Value = serde_json::from_slice(&shaped.body).unwrap();
                    prop_assert_eq!(sent, event);
                    prop_assert!(shaped.headers.is_empty());
                }
                Ok(Outcome::Cancel { .. }) => prop_assert!(false, "the identity never cancels"),
                Err(error) => prop_assert!(false, "unexpected error {}", error),
            }
        }

        #[test]
        fn any_returned_value_is_an_outcome_or_a_clean_error(result in json_value()) {
            let code = format!("function handler(w) {{ return {result}; }}");
            match run_once(&code, &input(), NOW, Limits::default(), &SigningScheme::Standard) {
                Ok(_) => {}
                Err(error) => prop_assert_eq!(error.kind, ScriptErrorKind::Malformed, "{}", error),
            }
        }
    }
}
