//! The in-process host: loads precompiled components and runs a fresh instance of one per
//! request, within the function's memory cap and timeout.

use crate::egress::Egress;
use crate::engine::{self, EPOCH_TICK, PoolConfig};
use crate::error::WasmError;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bytes of stdout (and of stderr) kept per request; a guest that writes more traps.
const OUTPUT_CAP: usize = 1 << 20;

/// What a component runs with (from the runner, with the component).
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// The version (deployment) the component is of.
    pub version: String,
    /// Its variables, secrets opened.
    pub environment: Vec<(String, String)>,
    /// Its memory cap (`memory_limit`), in MiB.
    pub memory_limit_mb: u32,
    /// What its outgoing HTTP may reach.
    pub egress: Egress,
}

/// A component ready to instantiate.
pub struct Loaded {
    pre: ProxyPre<State>,
    manifest: Manifest,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Loaded")
            .field("manifest", &self.manifest)
            .finish()
    }
}

impl Loaded {
    /// Returns what it runs with.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// Why a request got no answer from its instance.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// It ran past its timeout.
    #[error("it did not answer within its timeout")]
    TimedOut,
    /// It needed more memory than its `memory_limit`.
    #[error("it needed more memory than its memory_limit ({limit_mb} MB): {trap}")]
    OverMemory {
        /// The cap.
        limit_mb: u32,
        /// What trapped.
        trap: String,
    },
    /// It trapped (a WebAssembly trap), exited, or a host call failed.
    #[error("{0}")]
    Trapped(String),
    /// It returned without setting a response, or set an error instead of one.
    #[error("it did not set a response{0}")]
    NoResponse(String),
    /// No instance could be made (the pool is full, or the component does not link).
    #[error("no instance could be made: {0}")]
    Instantiate(String),
}

/// A request's answer: the response (or why there is none), and the guest's output once the
/// instance ended.
pub struct Invocation {
    /// What the guest answered; its body streams while the instance runs.
    pub response: Result<http::Response<HyperOutgoingBody>, Failure>,
    /// Resolves once the instance ended, with what it printed and how it ended.
    pub ended: tokio::task::JoinHandle<Ended>,
}

/// How an instance ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// Lines it wrote on stdout.
    pub stdout: Vec<String>,
    /// Lines it wrote on stderr.
    pub stderr: Vec<String>,
    /// Why it failed, if it did (after answering, or before: then the request failed too).
    pub failure: Option<String>,
    /// Whether it failed by running past its timeout.
    pub timed_out: bool,
    /// Whether it failed before it started: no instance could be made.
    pub not_started: bool,
}

/// The state of one instance's store.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    cap: MemoryCap,
    egress: Egress,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// The memory cap of one instance: growing a memory past `bytes` traps, and says so.
struct MemoryCap {
    bytes: usize,
    refused: Arc<AtomicBool>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.refused.store(true, Ordering::Relaxed);
            wasmtime::bail!(
                "memory would grow to {desired} bytes, over the cap of {} bytes",
                self.bytes
            );
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Returns a linker with every WASI 0.2 interface and `wasi:http`; with no preopened
/// directory, no socket permission and an empty stdin, the guest reaches nothing but its
/// variables, clocks, randomness, stdout and stderr, and outgoing HTTP through [`Egress`].
fn linker(engine: &Engine) -> Result<Linker<State>, WasmError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|error| WasmError::Engine(format!("{error:#}")))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|error| WasmError::Engine(format!("{error:#}")))?;
    Ok(linker)
}

/// Returns why `component` cannot serve `wasi:http/proxy` requests through `linker`, if so.
fn prepare(linker: &Linker<State>, component: &Component) -> Result<ProxyPre<State>, String> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|error| format!("{error:#}"))?;
    ProxyPre::new(pre).map_err(|error| format!("{error:#}"))
}

/// Checks that `component`, compiled with `engine`, serves the `wasi:http/proxy` world with
/// what the host offers.
#[cfg(feature = "compile")]
pub(crate) fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    let linker = linker(engine).map_err(|error| error.to_string())?;
    prepare(&linker, component).map(drop)
}

/// Runs components: one engine, one linker, and the clock that interrupts guests.
pub struct Host {
    engine: Engine,
    linker: Linker<State>,
    max_memory_mb: u32,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Host")
            .field("max_memory_mb", &self.max_memory_mb)
            .finish()
    }
}

impl Host {
    /// Returns a host whose instances come from a pool sized by `pool`; a thread advances
    /// its epoch every [`EPOCH_TICK`] until the host is dropped.
    pub fn new(pool: &PoolConfig) -> Result<Self, WasmError> {
        let engine = engine::runtime(pool)?;
        let linker = linker(&engine)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".to_owned())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|error| WasmError::Engine(format!("cannot start the epoch thread: {error}")))?;
        Ok(Self {
            engine,
            linker,
            max_memory_mb: pool.max_memory_mb,
        })
    }

    /// Returns the component whose precompiled form is `precompiled`, ready to instantiate.
    pub fn load(&self, precompiled: &[u8], manifest: Manifest) -> Result<Loaded, WasmError> {
        // SAFETY: `deserialize` trusts its input to be machine code that Wasmtime wrote. It
        // is: the builder compiled it (`precompile`) into an image only nuage writes, and the
        // runner hands it over the internal, authenticated channel. Wasmtime still checks its
        // header, engine version and settings, and refuses what does not match.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, precompiled) }
            .map_err(|error| WasmError::Load(format!("{error:#}")))?;
        let pre = prepare(&self.linker, &component).map_err(WasmError::Load)?;
        Ok(Loaded { pre, manifest })
    }

    /// Runs `request` in a fresh instance of `loaded`, which must answer within `timeout`.
    pub async fn invoke<B>(&self, loaded: &Loaded, request: http::Request<B>, timeout: Duration) -> Invocation
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let deadline = Instant::now() + timeout;
        let (stdout, stderr) = (MemoryOutputPipe::new(OUTPUT_CAP), MemoryOutputPipe::new(OUTPUT_CAP));
        let limit_mb = loaded.manifest.memory_limit_mb.min(self.max_memory_mb).max(1);
        let refused = Arc::new(AtomicBool::new(false));
        let mut store = self.store(loaded, &stdout, &stderr, limit_mb, refused.clone(), deadline);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = {
            let mut http = store.data_mut().http();
            http.new_incoming_request(Scheme::Http, request)
                .and_then(|incoming| Ok((incoming, http.new_response_outparam(sender)?)))
        };
        let (incoming, outparam) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                return Invocation {
                    response: Err(Failure::Instantiate(format!("{error:#}"))),
                    ended: tokio::spawn(async { Ended::default() }),
                };
            }
        };
        let pre = loaded.pre.clone();
        let run = async move {
            let proxy = pre.instantiate_async(&mut store).await.map_err(|error| (true, error))?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
                .map_err(|error| (false, error))
        };
        // One task runs the instance to its end, then collects what it printed.
        let (cap, limit) = (refused.clone(), limit_mb);
        let ended = tokio::spawn(async move {
            let ran = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(failure),
                Err(_) => Some((false, wasmtime::Error::from(Trap::Interrupt))),
            };
            finish(ran, stdout, stderr, &cap, limit)
        });
        answer(receiver, ended, refused, limit_mb).await
    }

    /// Returns a store for one instance of `loaded`, interrupted at `deadline`.
    fn store(
        &self,
        loaded: &Loaded,
        stdout: &MemoryOutputPipe,
        stderr: &MemoryOutputPipe,
        limit_mb: u32,
        refused: Arc<AtomicBool>,
        deadline: Instant,
    ) -> Store<State> {
        let wasi = WasiCtx::builder()
            .envs(loaded.manifest.environment.as_slice())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            cap: MemoryCap {
                bytes: (limit_mb as usize) << 20,
                refused,
            },
            egress: loaded.manifest.egress,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.cap);
        // Every tick the guest yields (other requests on this thread go on); past the
        // deadline it traps.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// Waits for the guest's response, or for its end without one.
async fn answer(
    receiver: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
    ended: tokio::task::JoinHandle<Ended>,
    refused: Arc<AtomicBool>,
    limit_mb: u32,
) -> Invocation {
    let response = match receiver.await {
        Ok(Ok(response)) => {
            return Invocation {
                response: Ok(response),
                ended,
            };
        }
        Ok(Err(code)) => {
            return Invocation {
                response: Err(Failure::NoResponse(format!(": it set the error {code:?}"))),
                ended,
            };
        }
        Err(_) => ended.await.unwrap_or_else(|error| Ended {
            failure: Some(format!("the instance's task failed: {error}")),
            ..Ended::default()
        }),
    };
    let failure = match response.failure.clone() {
        None => Failure::NoResponse(String::new()),
        Some(_) if response.timed_out => Failure::TimedOut,
        Some(reason) if response.not_started => Failure::Instantiate(reason),
        Some(trap) if refused.load(Ordering::Relaxed) => Failure::OverMemory { limit_mb, trap },
        Some(trap) => Failure::Trapped(trap),
    };
    Invocation {
        response: Err(failure),
        ended: tokio::spawn(async move { response }),
    }
}

/// Collects what an instance that ended printed, and why it failed (`ran`: whether before
/// it started, and the error).
fn finish(
    ran: Option<(bool, wasmtime::Error)>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    refused: &AtomicBool,
    limit_mb: u32,
) -> Ended {
    let (mut timed_out, mut not_started) = (false, false);
    let failure = ran.map(|(before_start, error)| {
        timed_out = error.downcast_ref::<Trap>() == Some(&Trap::Interrupt);
        not_started = before_start;
        describe(&error, refused.load(Ordering::Relaxed), limit_mb)
    });
    let lines = |pipe: &MemoryOutputPipe| {
        String::from_utf8_lossy(&pipe.contents())
            .lines()
            .map(str::to_owned)
            .collect()
    };
    Ended {
        stdout: lines(&stdout),
        stderr: lines(&stderr),
        failure,
        timed_out,
        not_started,
    }
}

/// Returns a one-line account of a guest's failure: the trap, and the memory cap when it
/// was hit.
fn describe(error: &wasmtime::Error, over_memory: bool, limit_mb: u32) -> String {
    let head = if let Some(trap) = error.downcast_ref::<Trap>() {
        // Wasmtime says "wasm trap: <what>"; "it trapped: <what>" says it once.
        let trap = trap.to_string();
        format!("it trapped: {}", trap.strip_prefix("wasm trap: ").unwrap_or(&trap))
    } else if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("it exited with status {}", exit.0)
    } else {
        format!("it failed: {error:#}")
    };
    let head = head.lines().next().unwrap_or_default().to_owned();
    if over_memory {
        format!("{head} (memory_limit of {limit_mb} MB reached)")
    } else {
        head
    }
}
