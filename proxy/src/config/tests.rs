use super::*;
use crate::downstream::ClientLimits;
use std::time::Duration;

fn config(args: &[&str]) -> Result<EdgeConfig, ConfigError> {
    EdgeConfig::from_argv(args.iter().copied())
}

fn error(args: &[&str]) -> String {
    config(args).unwrap_err().to_string()
}

fn toml_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn flags_beat_the_file_and_defaults_fill_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(
        &dir,
        "admin = \"127.0.0.1:9999\"\nroutes = \"/etc/dime/routes.yaml\"\nhttp = [\"127.0.0.1:81\"]\nretries = 5\n",
    );
    let cfg = config(&["--config", &file, "--http", "127.0.0.1:82", "--retries", "2"]).unwrap();
    assert_eq!(cfg.http, vec!["127.0.0.1:82".parse().unwrap()], "a flag beats the file");
    assert_eq!(cfg.retries, 2, "a flag equal to the default still beats the file");
    assert_eq!(cfg.admin, "127.0.0.1:9999".parse().unwrap(), "the file beats the default");
    assert!(matches!(&cfg.routes, RouteSource::File(p) if p == &PathBuf::from("/etc/dime/routes.yaml")));
    assert_eq!(cfg.shutdown_timeout, Duration::from_secs(10));
    assert!(cfg.access_log);
    let cfg = config(&["--routes", "r.yaml"]).unwrap();
    assert_eq!(cfg.http, vec!["0.0.0.0:8080".parse().unwrap()]);
    assert_eq!(cfg.admin, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(cfg.cache.size, 256 << 20);
    assert_eq!(cfg.cache.max_object, 32 << 20);
    assert_eq!(cfg.tcp_drain_timeout, Duration::from_secs(300));
    assert_eq!(cfg.upstream_idle_timeout, Duration::from_secs(60));
    let cfg = config(&["--routes", "r.yaml", "--upstream-idle-timeout", "4s"]).unwrap();
    assert_eq!(cfg.upstream_idle_timeout, Duration::from_secs(4));
}

#[test]
fn every_setting_is_also_a_file_key_and_the_file_keeps_its_types() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(
        &dir,
        "routes = \"r.yaml\"\naccess_log = false\nlog_format = \"json\"\nmax_connections = 7\ncache_size = \"1GiB\"\n",
    );
    let cfg = config(&["--config", &file]).unwrap();
    assert!(!cfg.access_log);
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(cfg.clients.max_connections, 7);
    assert_eq!(cfg.cache.size, 1 << 30);
    let file = toml_file(&dir, "routes = \"r.yaml\"\nmax_connections = \"many\"\n");
    let e = error(&["--config", &file]);
    assert!(e.contains("edge.toml") && e.contains("max_connections") && e.contains("line 2"), "{e}");
    let file = toml_file(&dir, "config = \"other.toml\"\n");
    assert!(error(&["--config", &file]).contains("unknown field `config`"));
}

#[test]
fn bad_settings_name_the_setting() {
    assert!(error(&["--routes", "r.yaml", "--admin", "localhost"]).starts_with("admin: `localhost`"));
    assert!(error(&["--routes", "r.yaml", "--trusted-proxies", "nope"]).starts_with("trusted_proxies"));
    assert!(matches!(config(&[]), Err(ConfigError::NoRoutes)));
    assert!(error(&["--routes", "r.yaml", "--cache-size", "12XB"]).starts_with("cache_size: `12XB`"));
    assert!(error(&["--routes", "r.yaml", "--cache-max-object", "1GiB"]).contains("larger than cache_size"));
    assert!(error(&["--routes", "r.yaml", "--tcp", "rtmp=1.2.3.4:1935,rtmp=1.2.3.4:1936"]).contains("unique"));
    assert!(error(&["--routes", "r.yaml", "--threads", "0"]).starts_with("threads"));
    // Refused, never folded: `EDGE-A`, `edge_a` and `edge.a` would all be control's `edge-a` otherwise.
    for bad in ["edge a", "edge/a", &"e".repeat(64), "EDGE-A", "edge_a", "edge.a", "a-"] {
        let e = error(&["--routes", "r.yaml", "--edge-name", bad]);
        assert!(e.starts_with("edge_name") && e.contains("DNS-1123"), "{bad}: {e}");
    }
    let named = config(&["--routes", "r.yaml", "--edge-name", "edge-a"]).unwrap();
    assert_eq!(named.edge_name, "edge-a");
}

#[test]
fn parsing_reads_and_creates_nothing() {
    // Token files and the body directory are start-up's business (server::run), not the parser's.
    let cfg = config(&["--routes", "r.yaml", "--cache-body-dir", "/dev/null/dime-bodies"]).unwrap();
    assert_eq!(cfg.cache.body_dir, Some(PathBuf::from("/dev/null/dime-bodies")));
    let cfg = config(&["--routes", "r.yaml", "--admin-token-file", "/nonexistent/tokens"]).unwrap();
    assert_eq!(cfg.admin_token_file, Some(PathBuf::from("/nonexistent/tokens")));
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
    assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
    assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert!(parse_size("12XB").is_err());
    assert!(parse_size("MiB").is_err());
}

#[test]
fn unknown_file_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(&dir, "colour = \"red\"\n");
    let e = error(&["--config", &file]);
    assert!(e.contains("unknown field `colour`"), "{e}");
}

#[test]
fn control_settings_need_a_token_and_exclude_a_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token").display().to_string();
    let state = dir.path().join("state").display().to_string();
    let cfg = config(&[
        "--control",
        "http://10.0.0.1:8080,http://10.0.0.2:8080",
        "--control-token-file",
        &token,
        "--state-dir",
        &state,
    ])
    .unwrap();
    let RouteSource::Control { urls, token_file, state_dir, .. } = cfg.routes else { panic!("not control") };
    assert_eq!(urls.len(), 2);
    assert_eq!(token_file, PathBuf::from(&token));
    assert_eq!(state_dir, Some(PathBuf::from(&state)));

    assert!(error(&["--control", "http://10.0.0.1:8080"]).starts_with("control_token_file: required"));
    let both = ["--control", "http://10.0.0.1:8080", "--routes", "r.yaml", "--control-token-file", &token];
    assert!(error(&both).contains("not both"));
    assert!(
        error(&["--control", "10.0.0.1:8080", "--control-token-file", &token]).starts_with("control: `10.0.0.1:8080`")
    );
    assert!(error(&["--routes", "r.yaml", "--state-dir", &state]).starts_with("state_dir"));
}

#[test]
fn token_files_are_read_with_their_path_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "# control token\nedge-token-0123456789abcdef\n").unwrap();
    assert_eq!(read_tokens(&path).unwrap(), vec!["edge-token-0123456789abcdef".to_owned()]);
    std::fs::write(&path, "short\n").unwrap();
    let e = read_tokens(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()) && e.contains("at least 16"), "{e}");
}

#[test]
fn acme_settings_are_checked() {
    let base =
        ["--routes", "r.yaml", "--https", "127.0.0.1:8443", "--acme-domain", "Video.Example.com.,video.example.com"];
    let acme = config(&base).unwrap().acme.unwrap();
    assert_eq!(acme.domains, vec!["video.example.com".to_owned()], "normalized and deduplicated");
    assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
    assert_eq!(acme.renew_before, Duration::from_secs(30 * 86400));
    assert_eq!(acme.dir, PathBuf::from("/var/lib/dime/acme"));
    assert!(error(&["--routes", "r.yaml", "--acme-domain", "video.example.com"]).contains("add --https"));
    for bad in ["*.example.com", "10.0.0.1", "localhost"] {
        let e = error(&["--routes", "r.yaml", "--https", "127.0.0.1:8443", "--acme-domain", bad]);
        assert!(e.starts_with("acme_domain") && e.contains(bad), "{e}");
    }
    let e = error(&[&base[..], &["--acme-directory", "http://acme.example/dir"]].concat());
    assert!(e.starts_with("acme_directory") && e.contains("https://"), "{e}");
}

#[test]
fn client_limits_default_parse_and_refuse_zero() {
    let cfg = config(&["--routes", "r.yaml"]).unwrap();
    let defaults = ClientLimits {
        header_timeout: Duration::from_secs(15),
        keepalive_timeout: Duration::from_secs(60),
        max_connections: 10_000,
    };
    assert_eq!(cfg.clients, defaults);
    let dir = tempfile::tempdir().unwrap();
    let file = toml_file(&dir, "header_timeout = \"5s\"\nkeepalive_timeout = \"30s\"\nmax_connections = 500\n");
    let cfg = config(&["--config", &file, "--routes", "r.yaml", "--header-timeout", "2s"]).unwrap();
    assert_eq!(
        cfg.clients,
        ClientLimits {
            header_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 500
        }
    );
    assert!(error(&["--routes", "r.yaml", "--max-connections", "0"]).contains("greater than 0"));
    assert!(error(&["--routes", "r.yaml", "--keepalive-timeout", "soon"]).starts_with("keepalive_timeout"));
}

/// docs/edge.md's settings table is the settings' user documentation: each flag has its row with its
/// environment variable, its TOML key and, where the flag has one, its default.
#[test]
fn the_settings_table_in_the_docs_lists_every_setting() {
    let docs = include_str!("../../../docs/edge.md");
    let command = RunArgs::augment_args(clap::Command::new("run"));
    for arg in command.get_arguments() {
        let Some(flag) = arg.get_long() else { continue };
        if flag == "help" {
            continue;
        }
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `--{flag} ")) || l.starts_with(&format!("| `--{flag}`")))
            .unwrap_or_else(|| panic!("docs/edge.md has no settings row for --{flag}"));
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(row.contains(&format!("`{env}`")), "--{flag}: the row does not name {env}: {row}");
        let key = arg.get_id().as_str();
        assert!(flag == "config" || row.contains(&format!("`{key}")), "--{flag}: the row does not name `{key}`: {row}");
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            let shown = row.contains(&format!("`{default}`")) || default == crate::acme::LETS_ENCRYPT;
            assert!(shown, "--{flag}: the row does not show the default `{default}`: {row}");
        }
    }
}
