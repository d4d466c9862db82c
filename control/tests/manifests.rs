//! The route ConfigMaps shipped in manifests/ compile: the native ones (naming Services, resolved here as control
//! would from LoadBalancer status) and the old Traefik fragments; and the two sets conflict as documented.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use dime_control::compile::{compile_with, RejectReason, Source};
use k8s_openapi::api::core::v1::ConfigMap;

/// What MetalLB would have assigned to the manifests' Services.
struct Assigned;

impl dime_routes::ServiceResolver for Assigned {
    fn resolve(&self, s: &dime_routes::ServiceRef<'_>) -> Result<(String, u16), dime_routes::Invalid> {
        match (s.namespace, s.name, s.port) {
            ("default", "nginx", "http") => Ok(("10.147.20.16".into(), 8080)),
            ("default", "nginx", "rtmp") => Ok(("10.147.20.16".into(), 1935)),
            ("default", "whoami", "http") => Ok(("10.147.20.17".into(), 80)),
            _ => Err(format!("the manifests define no Service port {s}").into()),
        }
    }
}

fn sources(dir: &str) -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests").join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let cm: ConfigMap = serde_yaml::from_str(&text).unwrap();
        out.push(Source {
            namespace: cm.metadata.namespace.unwrap(),
            name: cm.metadata.name.unwrap(),
            data: cm.data.unwrap().into_iter().collect::<BTreeMap<_, _>>(),
        });
    }
    out
}

#[test]
fn the_shipped_route_configmaps_compile() {
    let native = compile_with(sources("routes"), &Assigned);
    assert!(native.rejected.is_empty(), "{:?}", native.rejected);
    let t = &native.table;
    let video = t.find("video.edge.mycdndomain.us", "/hls/test.m3u8").unwrap();
    assert!(video.cache.is_some(), "the video route caches");
    assert_eq!(t.upstreams()["video"].servers[0].authority(), "10.147.20.16:8080");
    assert_eq!(t.tcp_route_for("rtmp").unwrap().upstream, "rtmp");
    assert!(t.find("whoami.edge.mycdndomain.us", "/").is_some());

    let traefik = compile_with(sources("traefik-compat"), &Assigned);
    assert!(traefik.rejected.is_empty(), "{:?}", traefik.rejected);
    assert_eq!(traefik.table.routes().len(), 2);

    // Both sets at once: same hosts, so one of each pair is rejected as a conflict (documented in the files).
    let both = compile_with(sources("routes").into_iter().chain(sources("traefik-compat")).collect(), &Assigned);
    assert_eq!(both.rejected.len(), 2);
    assert!(both.rejected.iter().all(|r| r.reason == RejectReason::Conflict));
}
