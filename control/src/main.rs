//! `dime-control` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dime_control::serve::{self, Shared};

#[derive(Debug, Parser)]
#[command(
    name = "dime-control",
    version,
    about = "Dime's control plane: route ConfigMaps in, a versioned route table out to the edges."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch ConfigMaps and serve the route table. The Kubernetes connection comes from KUBECONFIG or the
    /// in-cluster service account.
    Run {
        /// Namespace to watch (repeatable); none: all namespaces.
        #[arg(long = "namespace", env = "DIME_NAMESPACES", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Address of the API edges pull from.
        #[arg(long, env = "DIME_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// File of accepted bearer tokens, one per line (several, for rotation).
        #[arg(long, env = "DIME_TOKEN_FILE")]
        token_file: PathBuf,
        /// Serve the API over TLS with this PEM certificate chain and key: CERT_FILE:KEY_FILE. Edges pin the CA
        /// (`dime-edge --control-ca`).
        #[arg(long, env = "DIME_TLS_CERT", value_name = "CERT:KEY")]
        tls_cert: Option<String>,
        /// Namespace of the edges' Leases (control's own; in a cluster, POD_NAMESPACE from the downward API).
        #[arg(long, env = "POD_NAMESPACE", default_value = "dime-system")]
        lease_namespace: String,
        /// How long an edge's Lease lasts without a poll from it (the edges long-poll for 30 s; control renews
        /// the Lease of a parked poll every third of this).
        #[arg(long, env = "DIME_EDGE_LEASE", value_name = "DURATION", default_value = "90s", value_parser = lease)]
        edge_lease: std::time::Duration,
    },
}

/// A setting that cannot be used (exit code 2).
#[derive(Debug, thiserror::Error)]
enum SettingsError {
    #[error(transparent)]
    Tokens(#[from] dime_routes::TokenFileError),
    #[error("--tls-cert `{0}`: expected CERT_FILE:KEY_FILE")]
    TlsPair(String),
    #[error(transparent)]
    Tls(#[from] serve::TlsSetupError),
}

/// Why control stopped (exit code 1).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(kube::Error),
    #[error("metrics: {0}")]
    Metrics(prometheus::Error),
    #[error("{listen}: {error}")]
    Listen { listen: std::net::SocketAddr, error: std::io::Error },
}

/// What `run` needs before it touches the network: the accepted tokens and the TLS acceptor.
fn settings(
    token_file: &std::path::Path,
    tls_cert: Option<&str>,
) -> Result<(Vec<String>, Option<tokio_rustls::TlsAcceptor>), SettingsError> {
    let tokens = dime_routes::read_token_file(token_file)?;
    let tls = match tls_cert {
        None => None,
        Some(t) => {
            let (cert, key) = t.split_once(':').ok_or_else(|| SettingsError::TlsPair(t.to_owned()))?;
            Some(serve::tls_acceptor(cert.as_ref(), key.as_ref())?)
        }
    };
    Ok((tokens, tls))
}

/// Watches and serves until SIGTERM; `Err` when the API cannot be reached at start or the listener fails.
fn lease(text: &str) -> Result<std::time::Duration, dime_routes::Invalid> {
    let d = dime_routes::parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) {
        return Err(dime_routes::Invalid(format!("`{text}`: a Lease lasts at least 1s")));
    }
    Ok(d)
}

/// What `run` needs to know of the fleet's Leases.
struct Leases {
    namespace: String,
    duration: std::time::Duration,
}

async fn run(
    namespaces: Vec<String>,
    listen: std::net::SocketAddr,
    tokens: Vec<String>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    leases: Leases,
) -> Result<(), RunError> {
    let client = kube::Client::try_default().await.map_err(RunError::Kube)?;
    let shared = Arc::new(Shared::new(tokens).map_err(RunError::Metrics)?);
    let on_change = {
        let shared = shared.clone();
        move || shared.fleet_changed()
    };
    let fleet =
        dime_control::fleet::Fleet::start(client.clone(), &leases.namespace, leases.duration, on_change.clone());
    let _ = shared.fleet.set(fleet);
    // A Lease expiring changes the fleet without a watch event: look again every tenth of a Lease.
    tokio::spawn(dime_control::fleet::tick(leases.duration / 10, on_change));
    tokio::spawn(dime_control::watch::run(client, namespaces, shared.clone()));
    tokio::select! {
        r = serve::serve(listen, shared, tls) => r.map_err(|error| RunError::Listen { listen, error }),
        _ = shutdown() => {
            tracing::info!("SIGTERM: exiting");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let Command::Run { namespaces, listen, token_file, tls_cert, lease_namespace, edge_lease } = Cli::parse().command;
    let leases = Leases { namespace: lease_namespace, duration: edge_lease };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    let (tokens, tls) = match settings(&token_file, tls_cert.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dime-control: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
        .and_then(|runtime| runtime.block_on(run(namespaces, listen, tokens, tls, leases)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dime-control: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
