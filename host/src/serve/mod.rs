//! `livesnap serve`: the long-running, multi-tenant service. RTMP ingest, HTTP-FLV pulls and RTSP
//! cameras feed per-stream sessions (a sandboxed capture instance each); a small render pool decodes; storage
//! and durable callback delivery are shared. [`Server::bind`] then [`Server::run`] with a shutdown
//! future, so tests run it on port 0.

pub mod metrics;
pub mod render_pool;
pub mod session;
pub mod snapshot;
pub mod wall;

use crate::callback::Callbacks;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::storage::{Storage, StorageConfig};
use anyhow::Context;
use session::{ServeCtx, ServeSink};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A bound, not yet running service.
pub struct Server {
    ctx: Arc<ServeCtx>,
    rtmp: TcpListener,
    http: TcpListener,
}

impl Server {
    /// Build everything and bind the listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let rtmp = TcpListener::bind(config.server.rtmp)
            .await
            .with_context(|| format!("cannot listen for RTMP on {}", config.server.rtmp))?;
        let http = TcpListener::bind(config.server.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.server.http))?;
        let http_addr = http.local_addr().unwrap_or(config.server.http);
        let ctx = build_ctx(config, http_addr).await?;
        Ok(Server { ctx, rtmp, http })
    }

    /// The shared service state (tests and the load test drive sessions through it).
    pub fn ctx(&self) -> Arc<ServeCtx> {
        self.ctx.clone()
    }

    /// The RTMP listen address.
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp
            .local_addr()
            .unwrap_or(self.ctx.config.server.rtmp)
    }

    /// The HTTP listen address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or(self.ctx.config.server.http)
    }

    /// Run until `shutdown` resolves; then stop accepting, end live sessions, finish in-flight
    /// captures, flush callbacks (up to `limits.shutdown_grace_s`) and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { ctx, rtmp, http } = self;
        let stop = CancellationToken::new();
        let connections = TaskTracker::new();
        tracing::info!(rtmp = %rtmp.local_addr()?, http = %http.local_addr()?, "livesnap serving");

        let sink = Arc::new(ServeSink::new(ctx.clone()));
        let rtmp_task = tokio::spawn(crate::ingest::rtmp::serve(
            sink.clone(),
            rtmp,
            stop.clone(),
            connections.clone(),
        ));
        for pull in ctx.config.pulls.clone() {
            match pull.url.kind() {
                crate::config::SourceKind::HttpFlv => {
                    connections.spawn(crate::ingest::pull::run(sink.clone(), pull, stop.clone()));
                }
                crate::config::SourceKind::Rtsp => {
                    connections.spawn(crate::ingest::rtsp::run(sink.clone(), pull, stop.clone()));
                }
            }
        }
        let http_stop = stop.clone();
        let http_task = tokio::spawn(
            axum::serve(http, crate::http::router(ctx.clone()))
                .with_graceful_shutdown(async move { http_stop.cancelled().await })
                .into_future(),
        );

        shutdown.await;
        tracing::info!("shutting down: no new streams; finishing in-flight captures");
        stop.cancel();
        let grace = Duration::from_secs(ctx.config.limits.shutdown_grace_s);
        let _ = rtmp_task.await;
        connections.close();
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        ctx.tracker.close();
        if tokio::time::timeout(grace, ctx.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some captures did not finish in time");
        }
        if !ctx.callbacks.drain(grace).await {
            tracing::warn!(
                pending = ctx.callbacks.queue_depth(),
                "callbacks still pending: they stay spooled for the next start"
            );
        }
        if let Some(cluster) = &ctx.cluster {
            cluster.stop();
        }
        let _ = http_task.await;
        tracing::info!("livesnap stopped");
        Ok(())
    }
}

/// Everything streams share, without listeners: used by [`Server::bind`] and the load test.
pub async fn build_ctx(config: Config, http_addr: SocketAddr) -> anyhow::Result<Arc<ServeCtx>> {
    let runtime = Arc::new(Runtime::new(config.limits.runtime_limits())?);
    let metrics = Arc::new(metrics::Metrics::default());
    let pool = render_pool::RenderPool::start(
        runtime.clone(),
        metrics.clone(),
        config.limits.render_workers,
        config.limits.render_queue,
    )?;
    let storage_config = match &config.storage {
        Some(s) => s.clone(),
        None => toml::from_str::<StorageConfig>("").context("default [storage]")?,
    };
    let storage = Storage::from_config(&storage_config)?;
    let delivery = match &config.callbacks {
        Some(c) => c.clone(),
        None => toml::from_str("").context("default [callbacks]")?,
    };
    let (callbacks, cluster) = match &config.cluster {
        None => (Callbacks::open(&delivery).await?, None),
        Some(c) => {
            let conn = crate::cluster::connect(c).await?;
            let callbacks = Callbacks::open_forwarding(&delivery, conn.forwarder()).await?;
            let cluster = crate::cluster::Cluster::start(conn, callbacks.clone());
            (callbacks, Some(cluster))
        }
    };
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    Ok(Arc::new(ServeCtx {
        config,
        runtime,
        pool,
        storage,
        callbacks,
        metrics,
        live: Default::default(),
        tracker: TaskTracker::new(),
        public_url: public_url.trim_end_matches('/').to_owned(),
        overwrites: Default::default(),
        cluster,
    }))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when the
/// future is first polled), so call it before announcing that the service is up.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
