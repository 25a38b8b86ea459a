//! `certgate server`: wires the store, the management API and the gateway listeners together.

use std::process::ExitCode;
use std::sync::Arc;

use certgate_admin::{AdminState, Authenticator};
use certgate_gateway::{ConnectionCap, ListenerSettings, Timeouts};
use certgate_portal::PortalSettings;
use certgate_store::{Duty, SqlStore, Store};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bootstrap::{self, BootstrapError};
use crate::config::{ConfigError, ConnectionLimits, ServerArgs, ServerConfig, StoreLocation};
use crate::telemetry::NodeMetrics;
use crate::vault_config::VaultConfig;

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// With the driver's causes: at start, "unreachable" alone does not say that the server's
    /// certificate was refused or the password was wrong.
    #[error("cannot open the store: {}", certgate_model::error_chain(.0))]
    Store(#[from] certgate_store::StoreError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("vault: {0}")]
    Vault(String),
    #[error("cannot keep the node's id in {path}: {source}")]
    NodeId { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

pub fn main(args: ServerArgs) -> ExitCode {
    let access_log = crate::logging::init(args.log_format);
    let result = runtime().map_err(StartError::Runtime).and_then(|runtime| runtime.block_on(run(args, access_log)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// One worker per CPU this process may run on (its affinity mask, so `taskset` is respected);
/// on a single CPU a current-thread runtime, which saves the cross-thread wake-ups and queue
/// synchronisation a one-worker pool would pay for on every request.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cpus).enable_all().build()
    }
}

async fn run(args: ServerArgs, access_log: crate::logging::BufferedAccessLog) -> Result<(), StartError> {
    let mut config = args.resolve()?;
    // Before anything opens descriptors, so the whole run sees one limit.
    let descriptor_limit = crate::sockets::raise_descriptor_limit();
    let vault_config = std::mem::take(&mut config.vault);
    let refresh_interval = vault_config.refresh_interval;
    // Before anything is announced: a signal that arrives once the addresses are logged must
    // already find its handler, not the default action (which kills the process).
    let shutdown = shutdown_signal();
    let store = open_store(&config).await?;
    let environment_token = std::env::var("CERTGATE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    bootstrap::first_admin_token(store.as_ref(), &config.data_dir, environment_token.is_some()).await?;

    let mut compiler = certgate_gateway::Compiler::new(certgate_pki::BackendTrust::system_roots());
    if let Some((_, certificate)) = &config.https {
        compiler = compiler.with_https_certificate(certificate.clone());
    }
    if let Some((_, certificate)) = &config.admin_https {
        compiler = compiler.with_admin_https_certificate(certificate.clone());
    }
    if let Some(timeout) = config.backend_read_timeout {
        compiler = compiler.with_backend_read_timeout(timeout);
    }
    let compiler = Arc::new(compiler);
    if config.access_log && crate::logging::access_log_enabled() {
        certgate_gateway::set_access_log(Box::new(access_log));
    }
    let (metrics, control_metrics) = NodeMetrics::new();
    let compiled = std::time::Instant::now();
    let (snapshots, published, state) = crate::control::first_snapshot(store.as_ref(), &compiler).await?;
    control_metrics.published(&state, compiled.elapsed());

    let (gateway_settings, admin_settings) = listener_settings(&config.connections, descriptor_limit);
    let backlog = crate::sockets::listen_backlog();
    let admin_listener = config.admin_listen.map(|addr| bind("admin API", addr, backlog)).transpose()?;
    let http_listener = bind("gateway HTTP", config.http_listen, backlog)?;
    if let Some(listener) = &admin_listener {
        tracing::info!("admin API listening on http://{}", local_addr(listener));
    }
    let admin_https_listener = match &config.admin_https {
        Some((addr, certificate)) => {
            let listener = bind("admin API HTTPS", *addr, backlog)?;
            tracing::info!(%certificate, "admin API listening on https://{}", local_addr(&listener));
            Some(listener)
        }
        None => None,
    };
    tracing::info!("gateway HTTP listening on http://{}", local_addr(&http_listener));
    let https_listener = match &config.https {
        Some((addr, certificate)) => {
            let listener = bind("gateway HTTPS", *addr, backlog)?;
            tracing::info!(%certificate, "gateway HTTPS listening on https://{}", local_addr(&listener));
            Some(listener)
        }
        None => None,
    };

    let node = crate::cluster::NodeIdentity {
        id: crate::cluster::node_id(&config.data_dir)
            .map_err(|source| StartError::NodeId { path: config.data_dir.join("node-id"), source })?,
        name: crate::cluster::host_name(),
        admin_address: admin_listener.as_ref().or(admin_https_listener.as_ref()).map(local_addr),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let admin = AdminState::new(
        store.clone(),
        Authenticator::new(store.clone(), environment_token.as_deref()),
        config.max_body_bytes,
    )
    .with_publication(published.subscribe())
    .with_service(service_identity(config.service.clone(), &http_listener))
    .with_metrics(Arc::new(move || metrics.render()), config.public_metrics);
    let vault = start_vault(vault_config)?;
    let admin = match &vault {
        Some(vault) => admin.with_vault(vault.clone()),
        None => admin,
    };
    let refresher_task = vault.map(|vault| {
        let (store, retry) = (store.clone(), crate::cluster::takeover_retry(refresh_interval));
        tokio::spawn(crate::cluster::while_leading(
            store.clone(),
            Duty::Refresher,
            retry,
            control_metrics.refresher_active.clone(),
            shutdown_rx.clone(),
            move |stop| crate::refresher::run(store.clone(), vault.clone(), refresh_interval, wait_for(stop)),
        ))
    });
    let heartbeat_task =
        tokio::spawn(crate::cluster::heartbeat(store.clone(), node, published.subscribe(), shutdown_rx.clone()));
    let control_task = tokio::spawn(crate::control::run(
        store.clone(),
        compiler,
        snapshots.clone(),
        published,
        state,
        control_metrics.clone(),
        wait_for(shutdown_rx.clone()),
    ));
    let expiry_task = tokio::spawn(crate::telemetry::warn_of_expiries(control_metrics, wait_for(shutdown_rx.clone())));
    let admin_https_task = admin_https_listener.map(|listener| {
        tokio::spawn(certgate_gateway::serve(
            listener,
            ListenerSettings { name: "admin API HTTPS", ..admin_settings.clone() },
            Some(snapshots.clone()),
            TowerToHyperService::new(certgate_portal::router(
                certgate_admin::https_router(admin.clone()),
                PortalSettings { secure_cookies: true },
            )),
            wait_for(shutdown_rx.clone()),
        ))
    });
    let admin_task = admin_listener.map(|listener| {
        tokio::spawn(certgate_gateway::serve(
            listener,
            admin_settings,
            None,
            TowerToHyperService::new(certgate_portal::router(
                certgate_admin::router(admin),
                PortalSettings { secure_cookies: false },
            )),
            wait_for(shutdown_rx.clone()),
        ))
    });
    let https_task = https_listener.map(|listener| {
        let settings = ListenerSettings { name: "gateway HTTPS", ..gateway_settings.clone() };
        tokio::spawn(certgate_gateway::serve_https(
            listener,
            settings,
            snapshots.clone(),
            wait_for(shutdown_rx.clone()),
        ))
    });
    let gateway_task =
        tokio::spawn(certgate_gateway::serve_http(http_listener, gateway_settings, snapshots, wait_for(shutdown_rx)));

    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = shutdown_tx.send(true);
    for task in [admin_task, admin_https_task].into_iter().flatten() {
        let _ = task.await;
    }
    let _ = gateway_task.await;
    if let Some(task) = https_task {
        let _ = task.await;
    }
    let _ = control_task.await;
    let _ = heartbeat_task.await;
    let _ = expiry_task.await;
    if let Some(task) = refresher_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The vault client, when any identity is configured.
fn start_vault(config: VaultConfig) -> Result<Option<Arc<certgate_vault::VaultClient>>, StartError> {
    if config.identities.is_empty() {
        return Ok(None);
    }
    let ca = match &config.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| StartError::Vault(format!("cannot read {}: {e}", path.display())))?)
        }
        None => None,
    };
    let names: Vec<&str> = config.identities.iter().map(|(id, _)| id.as_str()).collect();
    tracing::info!(identities = %names.join(", "), interval_s = config.refresh_interval.as_secs(), "vault references enabled");
    let identities = config.into_identities();
    certgate_vault::VaultClient::new(identities, ca.as_deref()).map(|c| Some(Arc::new(c))).map_err(StartError::Vault)
}

async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, StartError> {
    bootstrap::create_data_dir(&config.data_dir)?;
    let inline_key = std::env::var("CERTGATE_MASTER_KEY").ok().map(zeroize::Zeroizing::new);
    let key = bootstrap::master_key(
        config.master_key_file.as_deref(),
        inline_key.as_deref().map(String::as_str),
        &config.data_dir,
        matches!(config.store, StoreLocation::Postgres(_)),
    )?;
    match &config.store {
        StoreLocation::Embedded => {
            let path = config.data_dir.join("certgate.db");
            let store = SqlStore::open_sqlite(&path, &key).await?;
            tracing::info!(path = %path.display(), "embedded store open");
            Ok(Arc::new(store))
        }
        StoreLocation::Postgres(options) => {
            let store = SqlStore::open_postgres(options, &key).await?;
            tracing::info!(server = %options.describe(), pool_size = options.pool_size, "shared PostgreSQL store open");
            Ok(Arc::new(store))
        }
    }
}

fn bind(what: &'static str, addr: std::net::SocketAddr, backlog: u32) -> Result<TcpListener, StartError> {
    crate::sockets::bind(addr, backlog).map_err(|source| StartError::Bind { what, addr, source })
}

/// The gateway listeners' settings (HTTP and HTTPS share one cap) and the management API's,
/// whose own cap keeps `/health`, `/ready` and the API answering while the gateway is flooded.
/// The configured ARM identity, with the gateway URL defaulting to the HTTP listener's address.
fn service_identity(
    mut service: certgate_admin::ServiceIdentity,
    http_listener: &TcpListener,
) -> certgate_admin::ServiceIdentity {
    if service.gateway_url.is_none() {
        service.gateway_url = Some(format!("http://{}", local_addr(http_listener)));
    }
    service
}

fn listener_settings(limits: &ConnectionLimits, descriptor_limit: u64) -> (ListenerSettings, ListenerSettings) {
    let timeouts =
        Timeouts { header_read: limits.header_read_timeout, idle: limits.idle_timeout, ..Timeouts::default() };
    let derived = crate::sockets::derived_gateway_cap(descriptor_limit, limits.admin_max_connections);
    let gateway_cap = limits.max_connections.unwrap_or(derived);
    if gateway_cap > derived {
        tracing::warn!(
            max_connections = gateway_cap,
            open_file_limit = descriptor_limit,
            fits = derived,
            "max_connections is more than the open-file limit leaves room for; accepts and backend connects may fail"
        );
    }
    tracing::info!(
        gateway = gateway_cap,
        admin = limits.admin_max_connections,
        header_read_timeout_s = timeouts.header_read.as_secs(),
        idle_timeout_s = timeouts.idle.as_secs(),
        "connection caps and timeouts"
    );
    let gateway = ListenerSettings { name: "gateway HTTP", cap: ConnectionCap::new(gateway_cap), timeouts };
    let admin = ListenerSettings { name: "admin API", cap: ConnectionCap::new(limits.admin_max_connections), timeouts };
    (gateway, admin)
}

fn local_addr(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(|e| format!("<unknown: {e}>"), |a| a.to_string())
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Installs the SIGINT/SIGTERM handlers now and resolves when either signal arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        match handlers {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop the node with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
