//! `dime-edge` command line: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dime_edge::config::{Cli, Command, EdgeConfig, ReportFormat, RunArgs, SignArgs};
use dime_edge::signed::KeyError;

// The proxy allocates and frees small buffers on every request; mimalloc does that faster than glibc's malloc
// (measured: see docs/benchmarks.md). Built without transparent huge pages (the `no_thp` feature) and committing
// arena memory as it is used (`.cargo/config.toml`): its defaults held 24-27 MiB resident where 14-17 MiB do
// (docs/benchmarks.md, "Resident memory").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Check { files, report, format } => check(&files, report.then_some(format)),
        Command::Sign(args) => sign(&args),
        Command::Run(_) => {
            let run = matches.subcommand_matches("run").unwrap_or(&matches);
            let cfg = match RunArgs::layered(run).and_then(EdgeConfig::from_settings) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("dime-edge: {e}");
                    return ExitCode::from(2);
                }
            };
            dime_edge::logging::init(cfg.log_format);
            match dime_edge::server::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    dime_edge::logging::flush();
                    eprintln!("dime-edge: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn sign(args: &SignArgs) -> ExitCode {
    match signed_url(args) {
        Ok(url) => {
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dime-edge sign: {e}");
            ExitCode::from(2)
        }
    }
}

/// Why `dime-edge sign` signed nothing.
#[derive(Debug, thiserror::Error)]
enum SignError {
    /// The key file, or the key asked for.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("--ttl: {0}")]
    Ttl(dime_routes::Invalid),
    #[error("`{url}`: {error}")]
    Url { url: String, error: http::uri::InvalidUri },
    #[error("the URL's path `{path}` is not under the prefix `{prefix}`")]
    OutsidePrefix { path: String, prefix: String },
}

/// `args.url` with a token for the prefix (the URL's path by default), valid for `--ttl` from now.
fn signed_url(args: &SignArgs) -> Result<String, SignError> {
    let keys = dime_edge::signed::Keys::load(&args.keys)?;
    let ttl = dime_routes::parse_duration(&args.ttl).map_err(SignError::Ttl)?;
    let exp = dime_routes::clock::unix_now().saturating_add(ttl.as_secs());
    let uri: http::Uri = args.url.parse().map_err(|error| SignError::Url { url: args.url.clone(), error })?;
    let prefix = args.prefix.clone().unwrap_or_else(|| uri.path().to_owned());
    if !uri.path().starts_with(&prefix) {
        return Err(SignError::OutsidePrefix { path: uri.path().to_owned(), prefix });
    }
    let token = dime_edge::signed::token(&keys, &args.key_id, &prefix, exp, args.client_ip)?;
    let sep = if uri.query().is_some() { '&' } else { '?' };
    Ok(format!("{}{sep}{token}", args.url))
}

/// The report for scripts: its entries, and how many have each verdict.
fn report_json(report: &dime_routes::report::Report) -> serde_json::Value {
    serde_json::json!({ "entries": report.entries, "summary": report.counts() })
}

/// `dime-edge check`: every file read (a `kubectl get configmap` dump is split into its data keys, named
/// `namespace/name/key`), then all of them compiled together; or, with `report`, the migration report.
fn check(files: &[std::path::PathBuf], report: Option<ReportFormat>) -> ExitCode {
    let mut texts: Vec<(String, String)> = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => match dime_routes::report::configmap_fragments(&text) {
                Some(fragments) => texts.extend(fragments),
                None => texts.push((name, text)),
            },
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let fragments: Vec<dime_routes::Fragment> =
        texts.iter().map(|(source, text)| dime_routes::Fragment { source, text }).collect();
    let name = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    if let Some(format) = report {
        let report = dime_routes::report::migration_report(&fragments);
        match format {
            ReportFormat::Text => print!("{}", report.to_text()),
            ReportFormat::Json => match serde_json::to_string_pretty(&report_json(&report)) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("dime-edge: cannot write the report: {e}");
                    return ExitCode::FAILURE;
                }
            },
        }
        let c = report.counts();
        let clean = c.with_change + c.not_supported + c.to_fix == 0;
        return if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    match dime_routes::compile(&fragments) {
        Ok(table) => {
            println!(
                "{name}: ok — {} routes, {} upstreams, version {}",
                table.routes().len(),
                table.upstreams().len(),
                table.version()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!("{name}: {} error(s)", errors.len());
            ExitCode::FAILURE
        }
    }
}
