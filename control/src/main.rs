//! `dime-control` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dime_control::serve::{self, ClientLimits};
use dime_control::state::Shared;

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
        /// Deprecated: a file of shared edge tokens, one per line. Each edge now has its own credential (a Secret
        /// labelled dime.dev/edge-credential in --lease-namespace; `dime-control credential NAME` makes one).
        /// Until the next release a shared token still reads the table, the fleet and the purge feed, but what it
        /// says of an edge (its Lease, membership, purge acknowledgements) is not taken.
        #[arg(long, env = "DIME_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// File of purge tokens, one per line: `POST /v1/purge` and `GET /v1/purge/ID` take these and only these
        /// (a purge token cannot read the route table, an edge token cannot purge). Without it, purging is off.
        #[arg(long, env = "DIME_PURGE_TOKEN_FILE")]
        purge_token_file: Option<PathBuf>,
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
        /// How many purges the purge log (ConfigMap dime-purge-log) keeps. An edge cut off for longer than this
        /// many purges drops its whole cache when it returns.
        #[arg(long, env = "DIME_PURGE_LOG_ENTRIES", default_value_t = dime_control::purge::MAX_ENTRIES,
              value_parser = log_entries)]
        purge_log_entries: usize,
        /// How long a client has, from connecting, to finish its TLS handshake and send a whole request header
        /// (and between requests on a kept-alive connection); slower clients are closed.
        #[arg(long, env = "DIME_HEADER_TIMEOUT", value_name = "DURATION", default_value = "15s",
              value_parser = header_timeout)]
        header_timeout: std::time::Duration,
        /// Connections open at once; past it a new one is closed at once (an edge fails over to its next
        /// control URL). Each edge holds two long-polls.
        #[arg(long, env = "DIME_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = max_connections)]
        max_connections: usize,
    },
    /// Make edge NAME's credential: a new token (written to --token-out, for the edge's --control-token-file) and,
    /// on stdout, the Secret that makes it NAME's (control keeps only the token's SHA-256): `kubectl apply -f -`.
    Credential {
        /// The edge's name (its --edge-name): a DNS-1123 label.
        name: String,
        /// Where the new token is written (mode 0600; refused if the file exists).
        #[arg(long, value_name = "FILE")]
        token_out: PathBuf,
        /// The namespace of the Secret: control's (its --lease-namespace).
        #[arg(long, default_value = "dime-system")]
        namespace: String,
    },
    /// Purge URLs, path prefixes or cache tags on every edge of the fleet, and report which edges applied it.
    /// Exit 0: every live edge applied it; 3: taken, but some live edge had not within --wait; 1: not taken.
    Purge {
        /// A URL to purge, every variant of it (repeatable).
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
        /// Every object of a host under a path: HOST/PATH, e.g. video.example.com/hls/ (repeatable).
        #[arg(long = "prefix", value_name = "HOST/PATH")]
        prefixes: Vec<String>,
        /// A cache tag (Surrogate-Key / Cache-Tag) to purge (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Mark the objects stale (revalidated, served stale as their stale-* windows allow) instead of removing.
        #[arg(long)]
        soft: bool,
        /// dime-control's API, e.g. https://dime-control.example.com:8443.
        #[arg(long, env = "DIME_CONTROL")]
        control: String,
        /// A file with the purge token (its first line).
        #[arg(long, env = "DIME_PURGE_TOKEN_FILE")]
        token_file: PathBuf,
        /// The CA that signed control's certificate, for https.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// How long to wait for the edges' acknowledgements.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = dime_routes::parse_duration)]
        wait: std::time::Duration,
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
    token_file: Option<&std::path::Path>,
    purge_token_file: Option<&std::path::Path>,
    tls_cert: Option<&str>,
) -> Result<(Tokens, Option<tokio_rustls::TlsAcceptor>), SettingsError> {
    let edge = match token_file {
        Some(f) => dime_routes::read_token_file(f)?,
        None => Vec::new(),
    };
    let purge = match purge_token_file {
        Some(f) => dime_routes::read_token_file(f)?,
        None => Vec::new(),
    };
    let tokens = Tokens { edge, purge };
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

/// The accepted bearer tokens: the edges' and the purgers'.
struct Tokens {
    edge: Vec<String>,
    purge: Vec<String>,
}

fn header_timeout(text: &str) -> Result<std::time::Duration, dime_routes::Invalid> {
    let d = dime_routes::parse_duration(text)?;
    if d < std::time::Duration::from_millis(100) {
        return Err(dime_routes::Invalid(format!("`{text}`: at least 100ms (a client needs time to send a header)")));
    }
    Ok(d)
}

fn max_connections(text: &str) -> Result<usize, dime_routes::Invalid> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(dime_routes::Invalid(format!("`{text}`: a number of connections from 1 to 1000000"))),
    }
}

fn log_entries(text: &str) -> Result<usize, dime_routes::Invalid> {
    match text.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(dime_routes::Invalid(format!("`{text}`: a number of purges from 1 to 100000"))),
    }
}

/// What `run` needs to know of the fleet's Leases.
struct Leases {
    namespace: String,
    duration: std::time::Duration,
    /// The purge log's bound (it lives beside the Leases).
    purge_log_entries: usize,
}

/// How the API listens: where, with which TLS, within which bounds.
struct Listen {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ClientLimits,
}

async fn run(namespaces: Vec<String>, listen: Listen, tokens: Tokens, leases: Leases) -> Result<(), RunError> {
    let client = kube::Client::try_default().await.map_err(RunError::Kube)?;
    if !tokens.edge.is_empty() {
        tracing::warn!(
            "--token-file: shared edge tokens are deprecated and read-only (the table, the fleet and the purge feed; no Lease, membership or purge acknowledgement); give each edge its own credential with `dime-control credential NAME` before the next release removes them"
        );
    }
    let shared = Arc::new(Shared::new(tokens.edge, tokens.purge).map_err(RunError::Metrics)?);
    dime_control::credentials::start(client.clone(), &leases.namespace, shared.credentials.clone(), {
        let shared = shared.clone();
        move || shared.metrics.fleet.credentials.set(shared.credentials.edges() as i64)
    });
    let on_change = {
        let shared = shared.clone();
        move || shared.fleet_changed()
    };
    let fleet =
        dime_control::fleet::Fleet::start(client.clone(), &leases.namespace, leases.duration, on_change.clone());
    let _ = shared.fleet.set(fleet);
    let on_purge = {
        let shared = shared.clone();
        move || shared.purges_changed()
    };
    let _ = shared.purges.set(dime_control::purge::Log::start(
        client.clone(),
        &leases.namespace,
        leases.purge_log_entries,
        on_purge,
    ));
    // A Lease expiring changes the fleet without a watch event: look again every tenth of a Lease.
    tokio::spawn(dime_control::fleet::tick(leases.duration / 10, on_change));
    tokio::spawn(dime_control::watch::run(client, namespaces, shared.clone()));
    tokio::select! {
        r = serve::serve(listen.addr, shared, listen.tls, listen.limits) => {
            r.map_err(|error| RunError::Listen { listen: listen.addr, error })
        }
        _ = shutdown() => {
            tracing::info!("SIGTERM: exiting");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    let (namespaces, listen, token_file, purge_token_file, tls_cert, leases, limits) = match Cli::parse().command {
        Command::Run {
            namespaces,
            listen,
            token_file,
            purge_token_file,
            tls_cert,
            lease_namespace,
            edge_lease,
            purge_log_entries,
            header_timeout,
            max_connections,
        } => {
            let leases = Leases { namespace: lease_namespace, duration: edge_lease, purge_log_entries };
            let limits = ClientLimits { header_timeout, max_connections };
            (namespaces, listen, token_file, purge_token_file, tls_cert, leases, limits)
        }
        Command::Credential { name, token_out, namespace } => return credential_command(&name, &token_out, &namespace),
        Command::Purge { urls, prefixes, tags, soft, control, token_file, ca, wait } => {
            let target = PurgeTarget { control, token_file, ca, wait };
            return purge_command(urls, &prefixes, tags, soft, &target);
        }
    };
    let (tokens, tls) = match settings(token_file.as_deref(), purge_token_file.as_deref(), tls_cert.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dime-control: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(RunError::Runtime).and_then(
            |runtime| runtime.block_on(run(namespaces, Listen { addr: listen, tls, limits }, tokens, leases)),
        );
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dime-control: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dime-control credential NAME`: the token to a new file, the Secret on stdout.
fn credential_command(name: &str, token_out: &std::path::Path, namespace: &str) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !dime_routes::wire::edge_name_ok(name) {
        eprintln!("dime-control credential: `{name}`: {}", dime_routes::wire::EDGE_NAME_RULE);
        return ExitCode::from(2);
    }
    let mut random = [0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).is_err() {
        eprintln!("dime-control credential: the system's random number generator failed");
        return ExitCode::FAILURE;
    }
    let (token, secret) = dime_control::credentials::issue(name, namespace, random);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(token_out)
        .and_then(|mut f| f.write_all(format!("{token}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("dime-control credential: {}: {e}", token_out.display());
        return ExitCode::FAILURE;
    }
    print!("{secret}");
    eprintln!("edge `{name}`: token in {}; apply the Secret above in namespace {namespace}", token_out.display());
    ExitCode::SUCCESS
}

/// Where `dime-control purge` sends its purge.
struct PurgeTarget {
    control: String,
    token_file: PathBuf,
    ca: Option<PathBuf>,
    wait: std::time::Duration,
}

/// `dime-control purge`: the answer's JSON on stdout, a summary line on stderr.
fn purge_command(urls: Vec<String>, prefixes: &[String], tags: Vec<String>, soft: bool, to: &PurgeTarget) -> ExitCode {
    use dime_control::purge::cli;
    let sent = cli::purge_of(urls, prefixes, tags, soft).and_then(|purge| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = runtime.map_err(|e| cli::CliError::Runtime { url: to.control.clone(), why: e.to_string() })?;
        runtime.block_on(cli::send(&to.control, &to.token_file, to.ca.as_deref(), &purge, to.wait))
    });
    match sent {
        Ok(status) => {
            println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            eprintln!("{}", status.summary());
            if status.all_acked {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("dime-control purge: {e}");
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
