//! The listeners: the data plane (OpenAI-compatible API) and the admin
//! plane, each an axum router over the shared `App`.

pub mod admin;
mod admin_keys;
mod admin_logs;
mod admin_a2a;
mod admin_mcp;
mod admin_overlays;
mod admin_prompts;
mod batches;
pub mod changes;
pub mod data;
mod responses;
mod responses_native;
mod openapi;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::reload::Live;
use crate::store::Store;
use crate::store::writer::Writer;

/// State shared by every handler. The config snapshot inside `live` is
/// swapped on reload; everything else lives as long as the process.
pub struct App {
    pub live: Arc<Live>,
    pub ids: RequestIds,
    pub ready: AtomicBool,
    /// Durable state; used by admin routes, never by the data plane.
    pub store: Arc<Store>,
    /// One overlay change at a time.
    pub overlay_lock: tokio::sync::Mutex<()>,
    /// MCP connections, tool inventories, pins and client sessions.
    pub mcp: Arc<crate::mcp::Hub>,
    /// A2A agents' cards and health.
    pub a2a: Arc<crate::a2a::Agents>,
    /// Files and batches of the Batches API, and the batches running here.
    pub batches: Arc<crate::batches::Batches>,
    /// Responses kept for `previous_response_id`, per tenant, bounded.
    pub responses: Arc<crate::responses::Stored>,
    /// The addresses bound (the console's data-plane URL and CORS check).
    pub bound: ui::Bound,
    /// Distributed mode: shared counters, the change bus (`None`: alone).
    pub cluster: Option<changes::Cluster>,
}

/// How often keys are re-read from a shared (PostgreSQL) store.
const KEY_SYNC: Duration = Duration::from_secs(1);

/// How long a graceful shutdown waits for in-flight requests.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Lets guardrails call a model through this gateway (see `state::Loopback`).
/// Weak, so a stopped gateway's state is not kept alive by its own closure.
fn install_loopback(shared: &crate::state::Shared, app: std::sync::Weak<App>) {
    shared.loopback.install(Arc::new(move |headers, body| {
        let app = app.clone();
        Box::pin(async move {
            let Some(app) = app.upgrade() else { return (503, bytes::Bytes::new()) };
            let resp = crate::pipeline::handle(
                app.ids.next(),
                crate::wire::Operation::ChatCompletions,
                crate::wire::Dialect::OpenAi,
                app.live.snapshot(),
                app.live.shared(),
                headers,
                axum::body::Body::from(body),
            )
            .await;
            let status = resp.status().as_u16();
            let body =
                http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
            (status, body)
        })
    }));
}

/// Request ids: a random per-process prefix and a counter — unique without
/// a syscall or lock per request.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds { prefix: fastrand::u32(..), next: AtomicU64::new(1) }
    }
}

impl RequestIds {
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("req_{:08x}{:012x}", self.prefix, n)
    }
}

/// A running gateway: both listeners, until `shutdown`.
pub struct Gateway {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<std::io::Result<()>>,
    /// The store writer stops after the listeners have drained, so spend
    /// charged by the last requests is written too.
    writer_stop: watch::Sender<bool>,
    writer: tokio::task::JoinHandle<()>,
    dispatcher: tokio::task::JoinHandle<()>,
    key_sync: Option<tokio::task::JoinHandle<()>>,
    auditor: tokio::task::JoinHandle<()>,
    logger: tokio::task::JoinHandle<()>,
    tracer: Option<tokio::task::JoinHandle<()>>,
    batch_executor: tokio::task::JoinHandle<()>,
    /// Distributed mode's Redis sync; its last sync runs after the drain.
    dist_sync: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Binds the listeners named in the current snapshot and starts serving.
    pub async fn start(live: Arc<Live>) -> std::io::Result<Gateway> {
        // The tokenizer's tables (about 50 MB) are not loaded here: only a
        // provider that reports no usage, Gemini embeddings and
        // `/v1/messages/count_tokens` need them, and an idle gateway should
        // not carry them. The first such request loads them (tens of ms).
        let snap = live.snapshot();
        // Durable state first: spend recorded before a restart counts again
        // before the first request is admitted.
        let store = Store::open(&snap.server.store).await.map_err(std::io::Error::other)?;
        let shared = live.shared();
        shared.ledger.import(store.load_spend().await.map_err(std::io::Error::other)?);
        shared.keys.set_secret(store.key_secret().await.map_err(std::io::Error::other)?);
        shared.keys.install(store.load_keys().await.map_err(std::io::Error::other)?);
        let overlays = store.load_overlays().await.map_err(std::io::Error::other)?;
        if !overlays.is_empty() {
            shared.overlays.set(overlays);
            let l = live.clone();
            match tokio::task::spawn_blocking(move || l.reload("stored admin overlays", false)).await {
                Ok(Ok(_)) => {}
                _ => {
                    // Set them aside (they stay in the store), or every later
                    // reload would fail on them too.
                    shared.overlays.set(Vec::new());
                    tracing::error!(
                        "stored admin overlays do not load with this config; serving the config file alone \
                         (correct the file, then re-apply or delete them through /admin/{{kind}})"
                    );
                }
            }
        }
        // Prompt versions and labels made through the admin API, before the
        // first request can name one.
        let prompts = store.load_prompts().await.map_err(std::io::Error::other)?;
        if !prompts.versions.is_empty() || !prompts.labels.is_empty() {
            shared.prompts.set(prompts);
            let l = live.clone();
            let loaded = tokio::task::spawn_blocking(move || l.reload("stored prompt templates", false)).await;
            if !matches!(loaded, Ok(Ok(_))) {
                // Set aside (they stay in the store), or every later reload would fail too.
                shared.prompts.set(Default::default());
                tracing::error!(
                    "the config file does not load with the stored prompt versions (it reuses a version number the \
                     admin API took); serving the file's templates alone until it is corrected and tollgate restarts"
                );
            }
        }
        let store = Arc::new(store);
        let mcp = Arc::new(crate::mcp::Hub::default());
        mcp.install(store.clone(), &live).await.map_err(std::io::Error::other)?;
        mcp.spawn_maintenance(&shared);
        crate::identity::jwt::prefetch(&snap.auth.jwt);
        // Counters become shared before the first request is admitted.
        let cluster = match &snap.distributed {
            Some(s) => Some(changes::Cluster::start(&live, s.clone()).await?),
            None => None,
        };
        let data = TcpListener::bind(snap.server.listen).await?;
        let admin = TcpListener::bind(snap.server.admin_listen).await?;
        let app = Arc::new(App {
            live,
            ids: RequestIds::default(),
            ready: AtomicBool::new(false),
            store: store.clone(),
            overlay_lock: Default::default(),
            mcp,
            a2a: Arc::default(),
            batches: Arc::new(crate::batches::Batches::new(
                store.clone(),
                &store.key_secret().await.map_err(std::io::Error::other)?,
            )),
            responses: Arc::default(),
            bound: ui::Bound { data: data.local_addr()?, admin: admin.local_addr()? },
            cluster,
        });
        install_loopback(&shared, Arc::downgrade(&app));
        changes::listen(&app);
        app.a2a.prefetch(&shared, &snap);
        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let data_addr = data.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let headers_within = snap.server.header_read_timeout;
        tasks.spawn(serve(data, data::router(app.clone()), rx.clone(), headers_within));
        tasks.spawn(serve(admin, admin::router(app.clone()), rx.clone(), headers_within));
        // Batch lines go through a router of their own, in-process: the
        // same routes and layers as a client's request.
        let batch_executor =
            crate::batches::run::start(app.batches.clone(), app.live.clone(), data::router(app.clone()), rx.clone());
        let (writer_stop, writer_rx) = watch::channel(false);
        let auditor = shared.audit.start(store.clone(), writer_rx.clone());
        let live = app.live.clone();
        let logger =
            shared.reqlog.start(store.clone(), Arc::new(move || live.snapshot().log_retention), snap.log_spool.clone(), writer_rx.clone());
        // Traces are set up from the config at start-up (a changed endpoint needs a restart).
        let tracer = snap.otlp.clone().map(|(endpoint, service)| {
            let (exporter, handle) = crate::traces::start(
                endpoint,
                service,
                shared.upstreams.client(Duration::from_secs(5)),
                writer_rx.clone(),
            );
            let _ = shared.reqlog.traces.set(exporter);
            handle
        });
        // Keys, overlays and MCP approvals changed by another gateway on a
        // shared store take effect here within `KEY_SYNC` (revocations
        // included), NATS or not: the store is the truth.
        let key_sync = matches!(*store, Store::Postgres(_)).then(|| {
            let (app, mut stop) = (Arc::downgrade(&app), writer_rx.clone());
            crate::task::spawn("key-sync", async move {
                let mut state = changes::Poll::default();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(KEY_SYNC) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    changes::poll(&app, &mut state).await;
                }
            })
        });
        let dist_sync = match &app.cluster {
            Some(c) => Some(crate::distributed::sync::start(c.cells.clone(), c.settings.clone(), writer_rx.clone()).await),
            None => None,
        };
        let dispatcher = crate::events::start(
            &shared.events,
            {
                let live = app.live.clone();
                Arc::new(move || live.snapshot().webhooks.clone())
            },
            shared.upstreams.client(Duration::from_secs(5)),
            writer_rx.clone(),
        );
        let writer = crate::task::spawn(
            "spend-writer",
            Writer::new(store, shared.ledger.clone()).run(Duration::from_secs(1), writer_rx),
        );
        app.ready.store(true, Ordering::Release);
        for w in &snap.warnings {
            tracing::warn!(warning = %w, "config");
        }
        tracing::info!(%data_addr, %admin_addr, config = %snap.origin, version = snap.version, "tollgate ready");
        Ok(Gateway {
            data_addr,
            admin_addr,
            app,
            stop,
            tasks,
            writer_stop,
            writer,
            dispatcher,
            key_sync,
            auditor,
            logger,
            tracer,
            batch_executor,
            dist_sync,
        })
    }

    /// Stops accepting, lets in-flight requests finish, then returns.
    pub async fn shutdown(mut self) {
        self.app.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Batch lines in flight are requests too: they finish before the writers stop.
        let _ = self.batch_executor.await;
        let _ = self.writer_stop.send(true);
        let _ = self.writer.await;
        let _ = self.dispatcher.await;
        let _ = self.auditor.await;
        let _ = self.logger.await;
        if let Some(t) = self.tracer {
            let _ = t.await;
        }
        if let Some(k) = self.key_sync {
            let _ = k.await;
        }
        if let Some(s) = self.dist_sync {
            let _ = s.await;
        }
    }

    /// Serves until SIGINT or SIGTERM, then drains — for at most
    /// `DRAIN_LIMIT`, so one endless stream cannot hold the process up.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        let writer_stop = self.writer_stop.clone();
        if tokio::time::timeout(DRAIN_LIMIT, self.shutdown()).await.is_err() {
            tracing::warn!("requests still running after {}s; stopping anyway", DRAIN_LIMIT.as_secs());
            let _ = writer_stop.send(true);
            // Give the store writer a moment for its final write.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Accepts connections until `stop`, then waits for the open ones to
/// finish their requests. hyper's own connection builder rather than
/// `axum::serve`, for the header-read timeout: a client that trickles its
/// headers (slowloris) is disconnected instead of holding a connection.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    headers_within: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(headers_within);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, then go on
                // accepting (as axum::serve does), rather than stop serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned();
        let conn = graceful.watch(conn);
        crate::task::spawn("connection", async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A JSON response with an OpenAI-shaped error body.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
