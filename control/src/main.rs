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

fn read_tokens(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    dime_routes::parse_tokens(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let Command::Run { namespaces, listen, token_file, tls_cert } = Cli::parse().command;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    let tokens = match read_tokens(&token_file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dime-control: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_cert.as_deref().map(|t| {
        let (cert, key) = t.split_once(':').ok_or_else(|| format!("--tls-cert `{t}`: expected CERT_FILE:KEY_FILE"))?;
        serve::tls_acceptor(cert.as_ref(), key.as_ref())
    }) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprintln!("dime-control: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dime-control: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("dime-control: cannot reach the Kubernetes API: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shared = match Shared::new(tokens) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("dime-control: metrics: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(dime_control::watch::run(client, namespaces, shared.clone()));
        let server = serve::serve(listen, shared, tls);
        tokio::select! {
            r = server => {
                if let Err(e) = r {
                    eprintln!("dime-control: {listen}: {e}");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            _ = shutdown() => {
                tracing::info!("SIGTERM: exiting");
                ExitCode::SUCCESS
            }
        }
    })
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
