use super::*;

#[test]
fn flags_beat_the_file_and_defaults_fill_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "admin = \"127.0.0.1:9999\"\nroutes = \"/etc/dime/routes.yaml\"\nhttp = [\"127.0.0.1:81\"]\n",
    )
    .unwrap();
    let args = RunArgs { config: Some(path), http: vec!["127.0.0.1:82".into()], ..Default::default() };
    let cfg = EdgeConfig::from_args(args).unwrap();
    assert_eq!(cfg.http, vec!["127.0.0.1:82".parse().unwrap()]);
    assert_eq!(cfg.admin, "127.0.0.1:9999".parse().unwrap());
    assert!(matches!(&cfg.routes, RouteSource::File(p) if p == &PathBuf::from("/etc/dime/routes.yaml")));
    assert_eq!(cfg.shutdown_timeout, Duration::from_secs(10));
    assert!(cfg.access_log);
}

#[test]
fn bad_settings_name_the_setting() {
    let args = RunArgs { routes: Some("r.yaml".into()), admin: Some("localhost".into()), ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("admin: `localhost`"));
    let args = RunArgs { routes: Some("r.yaml".into()), trusted_proxies: vec!["nope".into()], ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("trusted_proxies"));
    assert!(matches!(EdgeConfig::from_args(RunArgs::default()), Err(ConfigError::NoRoutes)));
    let args = RunArgs {
        routes: Some("r.yaml".into()),
        cache_body_dir: Some("/dev/null/dime-bodies".into()),
        ..Default::default()
    };
    let e = EdgeConfig::from_args(args).unwrap_err().to_string();
    assert!(e.starts_with("cache_body_dir: /dev/null/dime-bodies: "), "{e}");
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
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, "colour = \"red\"\n").unwrap();
    let err = EdgeConfig::from_args(RunArgs { config: Some(path), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
}

#[test]
fn control_settings_need_a_token_and_exclude_a_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "# control token\nedge-token-0123456789abcdef\n").unwrap();
    let args = RunArgs {
        control: vec!["http://10.0.0.1:8080".into(), "http://10.0.0.2:8080".into()],
        control_token_file: Some(token.clone()),
        state_dir: Some(dir.path().join("state")),
        ..Default::default()
    };
    let cfg = EdgeConfig::from_args(args).unwrap();
    let RouteSource::Control { urls, token: t, state_dir, .. } = cfg.routes else { panic!("not control") };
    assert_eq!(urls.len(), 2);
    assert_eq!(t, "edge-token-0123456789abcdef");
    assert_eq!(state_dir, Some(dir.path().join("state")));

    let args = RunArgs { control: vec!["http://10.0.0.1:8080".into()], ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("control_token_file: required"));
    let args = RunArgs {
        control: vec!["http://10.0.0.1:8080".into()],
        routes: Some("r.yaml".into()),
        control_token_file: Some(token.clone()),
        ..Default::default()
    };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().contains("not both"));
    let args = RunArgs { control: vec!["10.0.0.1:8080".into()], control_token_file: Some(token), ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("control: `10.0.0.1:8080`"));
}

#[test]
fn acme_settings_are_checked() {
    let base = || RunArgs {
        routes: Some("r.yaml".into()),
        https: vec!["127.0.0.1:8443".into()],
        acme_domain: vec!["Video.Example.com.".into(), "video.example.com".into()],
        ..Default::default()
    };
    let cfg = EdgeConfig::from_args(base()).unwrap();
    let acme = cfg.acme.unwrap();
    assert_eq!(acme.domains, vec!["video.example.com".to_owned()], "normalized and deduplicated");
    assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
    assert_eq!(acme.renew_before, Duration::from_secs(30 * 86400));
    assert_eq!(acme.dir, PathBuf::from("/var/lib/dime/acme"));
    let error = |args: RunArgs| EdgeConfig::from_args(args).unwrap_err().to_string();
    assert!(error(RunArgs { https: vec![], ..base() }).contains("add --https"));
    for bad in ["*.example.com", "10.0.0.1", "localhost"] {
        let e = error(RunArgs { acme_domain: vec![bad.into()], ..base() });
        assert!(e.starts_with("acme_domain") && e.contains(bad), "{e}");
    }
    let e = error(RunArgs { acme_directory: Some("http://acme.example/dir".into()), ..base() });
    assert!(e.starts_with("acme_directory") && e.contains("https://"), "{e}");
}

#[test]
fn client_limits_default_parse_and_refuse_zero() {
    let routes = || Some(PathBuf::from("r.yaml"));
    let cfg = EdgeConfig::from_args(RunArgs { routes: routes(), ..Default::default() }).unwrap();
    assert_eq!(cfg.clients, ClientLimits::default());
    assert_eq!(cfg.clients.header_timeout, Duration::from_secs(15));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, "header_timeout = \"5s\"\nkeepalive_timeout = \"30s\"\nmax_connections = 500\n").unwrap();
    let args =
        RunArgs { config: Some(path), routes: routes(), header_timeout: Some("2s".into()), ..Default::default() };
    let cfg = EdgeConfig::from_args(args).unwrap();
    assert_eq!(
        cfg.clients,
        ClientLimits {
            header_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 500
        }
    );
    let args = RunArgs { routes: routes(), max_connections: Some(0), ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().contains("greater than 0"));
    let args = RunArgs { routes: routes(), keepalive_timeout: Some("soon".into()), ..Default::default() };
    assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("keepalive_timeout"));
}
