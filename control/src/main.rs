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
async fn run(
    namespaces: Vec<String>,
    listen: std::net::SocketAddr,
    tokens: Vec<String>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), RunError> {
    let client = kube::Client::try_default().await.map_err(RunError::Kube)?;
    let shared = Arc::new(Shared::new(tokens).map_err(RunError::Metrics)?);
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
    let Command::Run { namespaces, listen, token_file, tls_cert } = Cli::parse().command;
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
        .and_then(|runtime| runtime.block_on(run(namespaces, listen, tokens, tls)));
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
